"""Small infra helpers: free ports, a coroutine run from sync code, creating a database.

The embedded servers of `minqing up` live in ``shared.embedded``; test-only helpers (such as
asking whether Docker runs) live under ``tests/support``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP listener could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, in a worker thread if a loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


async def _database_exists(conn: AsyncConnection, name: str) -> bool:
    """Whether the server behind ``conn`` has a database called ``name``."""
    query = text("select 1 from pg_database where datname = :name")
    return await conn.scalar(query, {"name": name}) is not None


async def _ensure_database(url: URL) -> None:
    """Create ``url.database`` through the server's ``postgres`` database unless it exists."""
    name = url.database
    if not name:
        raise ValueError(f"no database name in {url!r}")
    admin = url.set(drivername="postgresql+asyncpg", database="postgres")
    engine = create_async_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if await _database_exists(conn, name):
                return
            quoted = conn.dialect.identifier_preparer.quote(name)
            try:
                await conn.execute(text(f"create database {quoted}"))
            except DBAPIError:
                if not await _database_exists(conn, name):  # lost a race: fine
                    raise
    finally:
        await engine.dispose()


def ensure_database(url: str) -> None:
    """Create the database named in a SQLAlchemy PostgreSQL URL if it does not exist."""
    parsed = make_url(url)
    run_sync(lambda: _ensure_database(parsed))
