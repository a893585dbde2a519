"""Database engine and sessions: one async engine per service process."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

Sessions = async_sessionmaker[AsyncSession]


def make_engine(url: str) -> AsyncEngine:
    """An engine with pre-ping, so a restarted database does not fail the first request."""
    return create_async_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def make_sessions(engine: AsyncEngine) -> Sessions:
    """Sessions that keep loaded values usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers."""
    async with engine.connect() as conn:
        await conn.execute(text("select 1"))


async def reachable(sessions: Sessions) -> None:
    """Raise unless the database answers a session of ``sessions``."""
    async with sessions() as session:
        await session.execute(text("select 1"))
