"""Alembic, run per service: each service's migrations own its PostgreSQL schema.

Every service shares one script location (``shared/persistence/alembic_template``: the
``script.py.mako`` of new revisions, and an ``env.py`` that runs the service's own
``migrations/env.py``), while its revisions live in
``services/<service>/migrations/versions`` as ``<service>_0001``, ...
"""

from __future__ import annotations

import asyncio
import re
import runpy
import sys
from pathlib import Path
from typing import Literal

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine

from minqing.shared.service.settings import SERVICES, ServiceName

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
SHARED_DIR = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = Path(__file__).resolve().with_name("alembic_template")
# Schemas that belong to no one service: the principals and their credentials, which every
# service reads to know who is calling (shared/identity), migrated before the services'.
COMMON: tuple[Literal["identity"], ...] = ("identity",)
SchemaName = ServiceName | Literal["identity"]
SCHEMAS: tuple[SchemaName, ...] = (*COMMON, *SERVICES)


def migrations_dir(service: SchemaName) -> Path:
    """The schema's ``migrations`` directory (its env.py, and versions/ below it)."""
    if service in COMMON:
        return SHARED_DIR / service / "migrations"
    return SERVICES_DIR / service / "migrations"


def alembic_config(
    database_url: str, service: SchemaName, versions_dir: Path | None = None
) -> Config:
    """The Alembic configuration of one service, built in code (no alembic.ini to drift)."""
    config = Config()
    config.set_main_option("script_location", str(TEMPLATE_DIR))
    versions = versions_dir or migrations_dir(service) / "versions"
    config.set_main_option("version_locations", str(versions))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = service
    return config


def upgrade(
    database_url: str,
    service: SchemaName,
    revision: str = "head",
    versions_dir: Path | None = None,
) -> None:
    """Bring one service's schema up to ``revision``."""
    command.upgrade(alembic_config(database_url, service, versions_dir), revision)


def heads(service: SchemaName) -> list[str]:
    """The head revisions of the service's migrations (no database needed)."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config("", service)).get_heads())


def upgrade_all(database_url: str) -> None:
    """Bring every schema up to date: the common ones, then every service's."""
    for service in SCHEMAS:
        upgrade(database_url, service)


def next_revision_id(config: Config, service: SchemaName) -> str:
    """``<service>_<n+1>``, after the highest numbered revision of the service."""
    pattern = re.compile(rf"{re.escape(service)}_(\d+)")
    numbers = [
        int(found.group(1))
        for script in ScriptDirectory.from_config(config).walk_revisions()
        if (found := pattern.fullmatch(script.revision))
    ]
    return f"{service}_{max(numbers, default=0) + 1:04d}"


def revision(
    database_url: str,
    service: SchemaName,
    message: str,
    *,
    autogenerate: bool = False,
    versions_dir: Path | None = None,
) -> Path:
    """Write the service's next revision file (a draft to review); return its path.

    With ``autogenerate``, the upgrade holds what the database (at head) lacks compared with
    the service's tables in ``store.py``.
    """
    config = alembic_config(database_url, service, versions_dir)
    rev_id = next_revision_id(config, service)
    # The file is named like the first ones: 0002_<slug>.py ("%%": ConfigParser escaping).
    config.set_main_option("file_template", rev_id.rsplit("_", 1)[1] + "_%%(slug)s")
    ruff = Path(sys.executable).parent / "ruff"  # a development install: format the draft
    if ruff.is_file():
        hooks = {
            "hooks": "ruff_format",
            "ruff_format.type": "exec",
            "ruff_format.executable": str(ruff),
            "ruff_format.options": "format REVISION_SCRIPT_FILENAME",
        }
        for key, value in hooks.items():
            config.set_section_option("post_write_hooks", key, value)
    script = command.revision(config, message=message, autogenerate=autogenerate, rev_id=rev_id)
    if script is None or isinstance(script, list):
        raise RuntimeError(f"Alembic wrote no single revision for {service}: {script!r}")
    return Path(script.path)


def run_service_env() -> None:
    """Body of the shared ``env.py``: run the service's own ``migrations/env.py``."""
    service: SchemaName = context.config.attributes["schema"]
    runpy.run_path(str(migrations_dir(service) / "env.py"))


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's ``env.py``: online migrations over asyncpg, in its schema."""
    config = context.config
    schema: str = config.attributes["schema"]
    url: str = config.attributes["database_url"]
    if target_metadata.schema != schema:
        raise ValueError(f"metadata of schema {target_metadata.schema!r} given for {schema!r}")
    asyncio.run(_run_online(url, target_metadata))


async def _run_online(url: str, target_metadata: MetaData) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run_in_schema, target_metadata)
            await conn.commit()
    finally:
        await engine.dispose()


def _run_in_schema(conn: Connection, target_metadata: MetaData) -> None:
    schema = target_metadata.schema
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        version_table_schema=schema,
        include_schemas=True,
        # Autogenerate compares this service's schema only; other schemas belong to others.
        include_name=lambda name, type_, parent: type_ != "schema" or name == schema,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
