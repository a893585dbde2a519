"""Alembic, run per service: each service's migrations own its PostgreSQL schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import SERVICES, ServiceName

SERVICES_DIR = Path(__file__).resolve().parents[1] / "services"


def alembic_config(database_url: str, service: ServiceName) -> Config:
    """The Alembic configuration of one service, built in code (no alembic.ini to drift)."""
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = service
    return config


def upgrade(database_url: str, service: ServiceName, revision: str = "head") -> None:
    """Bring one service's schema up to ``revision``."""
    command.upgrade(alembic_config(database_url, service), revision)


def upgrade_all(database_url: str) -> None:
    """Bring every service's schema up to date."""
    for service in SERVICES:
        upgrade(database_url, service)


def run_env() -> None:
    """Body of every service's ``env.py``: online migrations over asyncpg, in its schema."""
    config = context.config
    schema: str = config.attributes["schema"]
    url: str = config.attributes["database_url"]
    asyncio.run(_run_online(url, schema))


async def _run_online(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run_in_schema, schema)
            await conn.commit()
    finally:
        await engine.dispose()


def _run_in_schema(conn: Connection, schema: str) -> None:
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(
        connection=conn,
        version_table_schema=schema,
        include_schemas=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
