"""Followup's own schema: the case of each matter, and the plumbing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.followup.domain import Case
from services.followup.handlers import Tracked
from shared.state import StateCache, StateTable
from shared.tables import plumbing_tables

SCHEMA = "followup"
metadata = MetaData(schema=SCHEMA)

cases = Table(
    "cases",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("last_event_id", Text, nullable=False),
    Column("correlation_id", Text, nullable=False),
    Column("assignment_no", Integer, nullable=False),
    Column("unit", Text),
    Column("deadline", Date),
    Column("lookback_due", Date),
    Column("resolved_on", Date),
    Column("lookback_provisional", Boolean, nullable=False),
    Column("responsible_person_id", Text),
    Column("responsible_person_name", Text),
    Column("overdue_kind", Text),
    Column("overdue_due", Date),
    Column("escalation_level", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

Index("cases_provisional", cases.c.issue_id, postgresql_where=text("lookback_provisional"))
Index("cases_deadline_waiting", cases.c.deadline, postgresql_where=text("status = 'assigned'"))
Index("cases_lookback_waiting", cases.c.lookback_due, postgresql_where=text("status = 'resolved'"))

plumbing = plumbing_tables(metadata)
_table = StateTable(cases, Case)


class SqlCases:
    """The ``Cases`` store on the service's own table, in the caller's transaction."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self._rows = StateCache(_table, session, now)

    async def provisional(self) -> list[tuple[str, Tracked]]:
        query = select(cases.c.issue_id).where(cases.c.lookback_provisional)
        ids = list((await self._session.scalars(query)).all())
        await self._rows.preload(ids)  # locked; re-read, since a consumer may have moved on
        found = [(i, await self.get(i)) for i in ids]
        return [(i, t) for i, t in found if t is not None and t.case.lookback_provisional]

    async def past_due(self, today: date) -> list[tuple[str, Tracked]]:
        query = select(cases.c.issue_id).where(
            or_(
                and_(cases.c.status == "assigned", cases.c.deadline < today),
                and_(cases.c.status == "resolved", cases.c.lookback_due < today),
            )
        )
        ids = list((await self._session.scalars(query)).all())
        await self._rows.preload(ids)  # locked; re-read, since a consumer may have moved on
        found = [(i, await self.get(i)) for i in ids]
        return [(i, t) for i, t in found if t is not None]

    async def preload(self, issue_ids: Sequence[str]) -> None:
        await self._rows.preload(issue_ids)

    async def get(self, issue_id: str, *, lock: bool = True) -> Tracked | None:
        row = await self._rows.get(issue_id, lock=lock)
        if row is None:
            return None
        return Tracked(_table.state(row), row["last_event_id"], row["correlation_id"])

    async def save(self, issue_id: str, tracked: Tracked) -> None:
        self._rows.put(
            issue_id,
            tracked.case,
            last_event_id=tracked.last_event_id,
            correlation_id=tracked.correlation_id,
        )

    async def flush(self) -> None:
        await self._rows.flush()
