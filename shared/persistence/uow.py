"""The unit of work: one atomic step of a use case, and the one write path of every service.

A use case loads state through ``uow.store``, decides, records the resulting events with
``uow.record(...)`` and calls ``commit()``: the state change, the new events (outbox rows)
and, in a consumer, the ids of the events it processed (inbox rows) are committed in one
transaction, and the relay is woken. The same use case runs in unit tests against an
in-memory unit of work that keeps what was recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Generic, Protocol, TypeVar, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.contract.envelope import Envelope, wrap
from minqing.shared.contract.events import Event
from minqing.shared.domain.clock import Clock
from minqing.shared.messaging.outbox import Outbox
from minqing.shared.persistence.db import Sessions

S = TypeVar("S")


@runtime_checkable
class Buffered(Protocol):
    """A store that keeps changes in memory until the unit of work flushes it."""

    async def preload(self, issue_ids: Sequence[str]) -> None: ...

    async def flush(self) -> None: ...


class UnitOfWork(Generic[S]):
    """State (``store``), the moment it happens (``now``), and the events it records."""

    def __init__(self, store: S, *, service: str, now: datetime) -> None:
        self.store = store
        self.service = service
        self.now = now
        self.recorded: list[Envelope] = []

    def record(
        self,
        event: Event,
        *,
        issue_id: str,
        actor: str,
        cause: Envelope | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope:
        """Queue ``event`` about ``issue_id``; with ``cause``, inherit its correlation."""
        envelope = wrap(
            event,
            issue_id=issue_id,
            service=self.service,
            actor=actor,
            time=self.now,
            cause=cause,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        self.recorded.append(envelope)
        return envelope

    async def flush(self) -> None:
        """Write what was recorded so far into the transaction (no commit)."""

    async def commit(self) -> None:
        """Make everything recorded durable at once."""
        await self.flush()


class SqlUnitOfWork(UnitOfWork[S]):
    """A unit of work over one database transaction and the service's outbox."""

    def __init__(
        self, session: AsyncSession, store: S, outbox: Outbox, *, service: str, now: datetime
    ) -> None:
        super().__init__(store, service=service, now=now)
        self.session = session
        self._outbox = outbox
        self._flushed = 0

    async def flush(self) -> None:
        if isinstance(self.store, Buffered):
            await self.store.flush()
        await self._outbox.add(self.session, self.recorded[self._flushed :])
        self._flushed = len(self.recorded)

    async def commit(self) -> None:
        await self.flush()
        await self.session.commit()
        if self.recorded:
            self._outbox.wake()


UowFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork[S]]]


def sql_units_of_work(
    sessions: Sessions,
    store: Callable[[AsyncSession], S],
    outbox: Outbox,
    *,
    service: str,
    clock: Clock,
) -> Callable[[], AbstractAsyncContextManager[SqlUnitOfWork[S]]]:
    """A factory of units of work, each in a new transaction rolled back unless committed."""

    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[SqlUnitOfWork[S]]:
        async with sessions() as session:  # closing without commit rolls back
            yield SqlUnitOfWork(session, store(session), outbox, service=service, now=clock())

    return unit_of_work
