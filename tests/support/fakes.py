"""In-memory units of work and stores: use cases tested without NATS or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Generic, TypeVar

from services.assignment.domain import Assignment
from services.followup.handlers import Tracked
from services.intake.handlers import Earlier
from shared.envelope import Envelope
from shared.events import IssueReported
from shared.uow import UnitOfWork

S = TypeVar("S")


class InMemoryUnitOfWork(UnitOfWork[S]):
    """Keeps what a use case recorded; ``committed`` holds what a commit made durable."""

    def __init__(self, store: S, *, service: str, now: datetime) -> None:
        super().__init__(store, service=service, now=now)
        self.committed: list[Envelope] = []

    async def commit(self) -> None:
        self.committed = list(self.recorded)


class Units(Generic[S]):
    """A factory of in-memory units of work over one shared store; remembers each one."""

    def __init__(self, store: S, *, service: str, clock: Callable[[], datetime]) -> None:
        self.store = store
        self._service = service
        self._clock = clock
        self.made: list[InMemoryUnitOfWork[S]] = []

    def __call__(self) -> AbstractAsyncContextManager[UnitOfWork[S]]:
        @asynccontextmanager
        async def unit() -> AsyncIterator[UnitOfWork[S]]:
            uow = InMemoryUnitOfWork(self.store, service=self._service, now=self._clock())
            self.made.append(uow)
            yield uow

        return unit()

    @property
    def committed(self) -> list[Envelope]:
        return [e for uow in self.made for e in uow.committed]


class InMemoryAssignments:
    def __init__(self) -> None:
        self.rows: dict[str, Assignment] = {}

    async def get(self, issue_id: str) -> Assignment | None:
        return self.rows.get(issue_id)

    async def save(self, issue_id: str, assignment: Assignment) -> None:
        self.rows[issue_id] = assignment


class InMemoryCases:
    def __init__(self) -> None:
        self.rows: dict[str, Tracked] = {}

    async def get(self, issue_id: str, *, lock: bool = True) -> Tracked | None:
        return self.rows.get(issue_id)

    async def save(self, issue_id: str, tracked: Tracked) -> None:
        self.rows[issue_id] = tracked


class InMemoryReports:
    def __init__(self) -> None:
        self.reports: dict[str, tuple[str, IssueReported, str | None, str | None]] = {}
        self.contacts: dict[str, tuple[str | None, str | None]] = {}

    async def by_key(self, source: str, key: str) -> Earlier | None:
        for issue_id, (event_id, report, k, request_hash) in self.reports.items():
            if (report.source, k) == (source, key):
                return Earlier(issue_id, event_id, request_hash)
        return None

    async def add(
        self,
        issue_id: str,
        event_id: str,
        report: IssueReported,
        *,
        received_at: datetime,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> None:
        self.reports[issue_id] = (event_id, report, idempotency_key, request_hash)

    async def add_contact(
        self, reporter_ref: str, name: str | None, phone: str | None, created_at: datetime
    ) -> None:
        self.contacts[reporter_ref] = (name, phone)
