"""In-memory units of work and stores: use cases tested without NATS or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Generic, TypeVar

import asyncpg  # type: ignore[import-untyped]

from minqing.services.assignment.domain import Assignment, RegistryRow
from minqing.services.followup.domain import Case, has_provisional_milestones, next_milestone_due
from minqing.services.followup.handlers import FundTotal, Tracked
from minqing.services.intake.domain import OpenMatter
from minqing.services.intake.handlers import MatterStatus, StoredReport
from minqing.services.intake.store import MAX_CANDIDATES
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import IssueReported
from minqing.shared.persistence.uow import UnitOfWork

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
        self.units: dict[str, RegistryRow] = {}

    async def get(self, issue_id: str) -> Assignment | None:
        return self.rows.get(issue_id)

    async def save(self, issue_id: str, assignment: Assignment) -> None:
        self.rows[issue_id] = assignment

    async def provisional(self) -> list[tuple[str, Assignment]]:
        return [(i, a) for i, a in self.rows.items() if a.deadline_provisional]

    async def open_of_unit(self, unit: str) -> list[tuple[str, Assignment]]:
        return [
            (i, a)
            for i, a in self.rows.items()
            if a.responsible_unit == unit and a.status == "assigned"
        ]

    async def registry(self, *, lock: bool = False) -> dict[str, RegistryRow]:
        return dict(sorted(self.units.items()))  # in code order, as the SQL store

    async def save_unit(self, row: RegistryRow) -> None:
        self.units[row.current.code] = row


class InMemoryCases:
    def __init__(self) -> None:
        self.rows: dict[str, Tracked] = {}

    async def get(self, issue_id: str, *, lock: bool = True) -> Tracked | None:
        return self.rows.get(issue_id)

    async def save(self, issue_id: str, tracked: Tracked) -> None:
        self.rows[issue_id] = tracked

    async def provisional(self) -> list[tuple[str, Tracked]]:
        return [
            (i, t)
            for i, t in self.rows.items()
            if t.case.lookback_provisional or has_provisional_milestones(t.case)
        ]

    async def past_due(self, today: date) -> list[tuple[str, Tracked]]:
        def due(case: Case) -> bool:
            if case.status == "assigned":
                return case.deadline is not None and case.deadline < today
            return (
                case.status == "resolved"
                and case.lookback_due is not None
                and (case.lookback_due < today)
            )

        def milestone_due(case: Case) -> bool:
            first = next_milestone_due(case)
            return case.status == "assigned" and first is not None and first < today

        return [(i, t) for i, t in self.rows.items() if due(t.case) or milestone_due(t.case)]

    async def fund_totals(self) -> list[FundTotal]:
        sums: dict[tuple[str, str], tuple[Decimal, int, set[str]]] = {}
        for issue_id, tracked in self.rows.items():
            for f in tracked.case.funds:
                amount, entries, matters = sums.get((f.source, f.status), (Decimal(0), 0, set()))
                sums[(f.source, f.status)] = (f.amount + amount, entries + 1, matters | {issue_id})
        return [
            FundTotal(source=s, status=st, amount=a, entries=e, matters=len(m))  # type: ignore[arg-type]
            for (s, st), (a, e, m) in sorted(sums.items())
        ]

    async def by_external_ref(self, source: str, external_ref: str) -> str | None:
        found = (
            i
            for i, t in self.rows.items()
            if (t.case.source, t.case.external_ref) == (source, external_ref)
        )
        return next(found, None)

    async def awaiting_lookback(
        self, unit: str, reviewed: Sequence[str], villages: Sequence[str]
    ) -> list[tuple[str, Case]]:
        def ours(case: Case) -> bool:
            named = case.lookback_unit == unit
            return named or (case.lookback_unit is None and case.unit in reviewed)

        def waiting(case: Case) -> bool:
            return case.status == "resolved" or (
                case.status == "closed" and case.revisit_reason is not None
            )

        return [
            (i, t.case)
            for i, t in self.rows.items()
            if ours(t.case) and waiting(t.case) and (not villages or t.case.village in villages)
        ]


class InMemoryReports:
    def __init__(self) -> None:
        self.reports: dict[str, StoredReport] = {}
        self.matters: dict[str, tuple[IssueReported, MatterStatus]] = {}
        self.reported_at: dict[str, datetime] = {}
        self.contacts: dict[str, tuple[str | None, str | None]] = {}
        self.units: dict[str, str] = {}

    async def by_key(self, source: str, key: str) -> StoredReport | None:
        return self._find(lambda r: (r.content.source, r.idempotency_key) == (source, key))

    async def by_external_ref(self, source: str, external_ref: str) -> StoredReport | None:
        return self._find(
            lambda r: (r.content.source, r.content.external_ref) == (source, external_ref)
        )

    def _find(self, match: Callable[[StoredReport], bool]) -> StoredReport | None:
        return next((r for r in self.reports.values() if match(r)), None)

    async def get(self, report_id: str) -> StoredReport | None:
        return self.reports.get(report_id)

    async def of_issue(self, issue_id: str) -> list[StoredReport]:
        found = [r for r in self.reports.values() if r.issue_id == issue_id]
        return sorted(found, key=lambda r: r.received_at)

    async def open_matters(self, village: str, category: str) -> list[OpenMatter]:
        found = [
            issue_id
            for issue_id, (content, status) in self.matters.items()
            if (content.village, content.category) == (village, category)
            and status.status != "closed"
        ]
        newest_first = sorted(found, key=self.reported_at.__getitem__, reverse=True)
        return [OpenMatter(i, self.matters[i][0].title) for i in newest_first[:MAX_CANDIDATES]]

    async def add(self, report: StoredReport) -> None:
        """Refused as the SQL store's constraints refuse it, with their names."""
        content = report.content
        for constraint, clash in {
            "reports_pkey": lambda r: r.report_id == report.report_id,
            "reports_event_id_key": lambda r: r.event_id == report.event_id,
            "reports_source_idempotency_key_key": lambda r: (
                report.idempotency_key is not None
                and (r.content.source, r.idempotency_key)
                == (content.source, report.idempotency_key)
            ),
            "reports_source_external_ref_key": lambda r: (
                content.external_ref is not None
                and (r.content.source, r.content.external_ref)
                == (content.source, content.external_ref)
            ),
        }.items():
            if self._find(clash) is not None:
                raise unique_violation(constraint)
        self.reports[report.report_id] = report

    async def add_matter(self, issue_id: str, content: IssueReported, at: datetime) -> None:
        if issue_id in self.matters:
            raise unique_violation("matters_pkey")
        self.matters[issue_id] = (content, MatterStatus("open", "reported"))
        self.reported_at[issue_id] = at

    async def move(self, report_id: str, issue_id: str, event_id: str) -> None:
        report = self.reports[report_id]
        self.reports[report_id] = replace(
            report, issue_id=issue_id, event_id=event_id, similarity=None
        )

    async def set_status(self, issue_id: str, status: MatterStatus, at: datetime) -> None:
        if issue_id in self.matters:
            self.matters[issue_id] = (self.matters[issue_id][0], status)
            if status.unit is not None:  # a status without a unit keeps the one before
                self.units[issue_id] = status.unit

    async def place(self, issue_id: str) -> tuple[str | None, str] | None:
        if issue_id not in self.matters:
            return None
        return self.units.get(issue_id), self.matters[issue_id][0].village

    async def add_contact(
        self, reporter_ref: str, name: str | None, phone: str | None, created_at: datetime
    ) -> None:
        self.contacts[reporter_ref] = (name, phone)


def unique_violation(constraint: str) -> Exception:
    """The error PostgreSQL's driver raises when ``constraint`` refuses a row."""
    message = f'duplicate key value violates unique constraint "{constraint}"'
    error: Exception = asyncpg.UniqueViolationError.new(
        {"M": message, "n": constraint, "C": "23505"}
    )
    return error


def foreign_key_violation(constraint: str) -> Exception:
    """The error PostgreSQL's driver raises when a row names what ``constraint`` says must
    exist, and it does not."""
    message = f'insert violates foreign key constraint "{constraint}"'
    error: Exception = asyncpg.ForeignKeyViolationError.new(
        {"M": message, "n": constraint, "C": "23503"}
    )
    return error
