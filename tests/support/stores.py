"""One contract for every store: the same cases run on the in-memory fake and on the SQL
store over a fresh, migrated PostgreSQL database (eventsourcing's ``ProcessRecorderTestCase``,
subclassed per recorder). A fake that drifts from its SQL store fails its store's cases.

A case opens the store once per transaction, as a use case's unit of work does: what one
``async with`` wrote is committed when it ends, and the next one reads it back. The
in-memory store has no transactions; it is the same object each time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Generic, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from minqing.shared.persistence.db import Sessions, make_sessions
from minqing.shared.persistence.uow import Buffered

S = TypeVar("S")

NOW = datetime(2026, 3, 6, 9, 30, tzinfo=UTC)
BACKENDS = ["in_memory", "postgres"]


class Stores(Generic[S]):
    """Opens the store under test, one transaction per ``async with``."""

    def __init__(
        self,
        fake: Callable[[], S],
        sql: Callable[[AsyncSession, datetime], S],
        sessions: Sessions | None,
    ) -> None:
        self.fake = fake() if sessions is None else None  # the one in-memory store
        self.sessions = sessions
        self._sql = sql

    @property
    def backend(self) -> str:
        return "in_memory" if self.sessions is None else "postgres"

    def __call__(self) -> AbstractAsyncContextManager[S]:
        return self._open()

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[S]:
        if self.sessions is None:
            assert self.fake is not None
            yield self.fake
            return
        async with self.sessions() as session:
            store = self._sql(session, NOW)
            yield store
            if isinstance(store, Buffered):
                await store.flush()
            await session.commit()


def driver_error(exc: BaseException) -> BaseException:
    """The database driver's own error under ``exc`` (SQLAlchemy wraps it), else ``exc``."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__module__.startswith("asyncpg"):
            return seen
        seen = seen.__cause__
    return exc


def sessions_for(request: pytest.FixtureRequest) -> Sessions | None:
    """No sessions for the fake; for the SQL store, sessions on a fresh migrated database
    (connections are not pooled, so nothing outlives the test's database)."""
    if request.param == "in_memory":
        return None
    url: str = request.getfixturevalue("database_url")
    return make_sessions(create_async_engine(url, poolclass=NullPool))
