"""PostgreSQL's part of a backup: pg_dump (custom format: one consistent snapshot of the
whole database, taken in one transaction) and pg_restore, with the client programs that
fit the server, and what a database already holds before a restore.

pg_dump must be at least the server's major version. The ``pgserver`` wheel (the embedded
database of ``minqing up``) ships its own PostgreSQL 16 programs; a machine may have others
on PATH or under /usr/lib/postgresql; the newest fitting one is used.
"""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class ToolMissing(RuntimeError):
    """No pg_dump or pg_restore fits the server."""


class ToolFailed(RuntimeError):
    """pg_dump or pg_restore exited with an error."""


def libpq_env(url: str) -> dict[str, str]:
    """The libpq environment (PGHOST...) for a SQLAlchemy URL, so that no password ever
    appears on a command line; a Unix socket directory comes as ``?host=``."""
    parsed = make_url(url)
    env: dict[str, str] = {}
    host = parsed.query.get("host") or parsed.host
    if isinstance(host, tuple):
        host = host[0]
    values = {
        "PGHOST": host,
        "PGPORT": str(parsed.port) if parsed.port else None,
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password,
        "PGDATABASE": parsed.database,
    }
    ssl = parsed.query.get("sslmode") or parsed.query.get("ssl")
    if isinstance(ssl, str) and ssl in SSL_MODES:
        values["PGSSLMODE"] = ssl
    for key, value in values.items():
        if value:
            env[key] = str(value)
    return env


def candidates(name: str) -> list[Path]:
    """Where a PostgreSQL client program may be: pgserver's own, PATH, /usr/lib/postgresql."""
    found: list[Path] = []
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        found.append(Path(spec.origin).parent / "pginstall" / "bin" / name)
    if on_path := shutil.which(name):
        found.append(Path(on_path))
    found += [Path(p) for p in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))]
    return [p for p in dict.fromkeys(found) if p.is_file()]


def major_of(version_line: str) -> int:
    """16 for ``pg_dump (PostgreSQL) 16.2`` (or ``16beta1``); 0 if it says none."""
    found = re.search(r"\)\s*(\d+)", version_line) or re.search(r"(\d+)", version_line)
    return int(found.group(1)) if found else 0


def version_line(program: Path) -> str:
    """What ``program --version`` prints."""
    done = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip()


def pick(name: str, at_least: int, programs: list[Path] | None = None) -> tuple[Path, str]:
    """The newest ``name`` whose major version is at least ``at_least``, and its version."""
    versions = [(p, version_line(p)) for p in (programs or candidates(name))]
    fitting = [(major_of(v), p, v) for p, v in versions if major_of(v) >= at_least]
    if not fitting:
        seen = "; ".join(f"{p}: {v or '?'}" for p, v in versions) or "none found"
        raise ToolMissing(
            f"no {name} of PostgreSQL {at_least} or newer ({seen}): install the client "
            f"programs of the server's version, or pass --pg-bin"
        )
    _, program, version = max(fitting, key=lambda f: f[0])
    return program, version


async def server_version(engine: AsyncEngine) -> tuple[int, str]:
    """The server's major version and its full version string."""
    async with engine.connect() as conn:
        number = int(await conn.scalar(text("select current_setting('server_version_num')")))
        full = str(await conn.scalar(text("select current_setting('server_version')")))
    return number // 10000, full


async def run_tool(program: Path, args: list[str], env: Mapping[str, str]) -> None:
    """Run a client program with the libpq environment; ``ToolFailed`` with what it said."""
    process = await asyncio.create_subprocess_exec(
        str(program),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        said = (err or out).decode(errors="replace").strip()
        raise ToolFailed(f"{program.name} exited with {process.returncode}: {said[-2000:]}")


def dump_args(path: Path) -> list[str]:
    """pg_dump: the whole database, custom format, one snapshot; owners and grants are
    left to the restoring side (``--no-owner --no-privileges``)."""
    return ["--format=custom", "--no-owner", "--no-privileges", f"--file={path}"]


def restore_args(path: Path, database: str) -> list[str]:
    """pg_restore: all or nothing (one transaction), stop at the first error, objects
    owned by the restoring role."""
    return [
        "--exit-on-error",
        "--single-transaction",
        "--no-owner",
        "--no-privileges",
        f"--dbname={database}",
        str(path),
    ]


@dataclass(frozen=True)
class SchemaContents:
    """What one schema of a database holds: its tables and their rows."""

    schema: str
    tables: int
    rows: int

    def __str__(self) -> str:
        return f"schema {self.schema} ({self.tables} tables, {self.rows} rows)"


async def contents(engine: AsyncEngine) -> list[SchemaContents]:
    """Every schema but the system's (and an empty ``public``), with its tables and rows."""
    async with engine.connect() as conn:
        schemas = list(
            await conn.scalars(
                text(
                    "select nspname from pg_namespace where nspname <> all(:system) "
                    "and nspname not like 'pg\\_%' order by nspname"
                ),
                {"system": list(SYSTEM_SCHEMAS)},
            )
        )
        found = []
        for schema in schemas:
            tables = list(
                await conn.scalars(
                    text(
                        "select c.relname from pg_class c join pg_namespace n "
                        "on n.oid = c.relnamespace where n.nspname = :schema "
                        "and c.relkind in ('r', 'p') order by c.relname"
                    ),
                    {"schema": schema},
                )
            )
            rows = 0
            for table in tables:
                rows += int(await conn.scalar(text(f'select count(*) from "{schema}"."{table}"')))
            if schema != "public" or tables:
                found.append(SchemaContents(schema, len(tables), rows))
    return found


async def drop(engine: AsyncEngine, schemas: list[SchemaContents]) -> None:
    """Drop what ``contents`` found (``public`` is emptied, not dropped)."""
    async with engine.begin() as conn:
        for each in schemas:
            await conn.execute(text(f'drop schema "{each.schema}" cascade'))
            if each.schema == "public":
                await conn.execute(text("create schema public"))


async def migration_heads(engine: AsyncEngine) -> dict[str, list[str]]:
    """Each schema's Alembic revision(s), where it has an ``alembic_version`` table."""
    async with engine.connect() as conn:
        schemas = list(
            await conn.scalars(
                text(
                    "select table_schema from information_schema.tables "
                    "where table_name = 'alembic_version' order by table_schema"
                )
            )
        )
        return {
            schema: sorted(
                await conn.scalars(text(f'select version_num from "{schema}".alembic_version'))
            )
            for schema in schemas
        }
