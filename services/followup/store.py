"""Followup's own schema: the case of each matter, and the plumbing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Table, Text
from sqlalchemy.ext.asyncio import AsyncSession

from services.followup.domain import Case
from services.followup.handlers import Tracked
from shared.state import StateTable
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
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

plumbing = plumbing_tables(metadata)
_state = StateTable(cases, Case)


class SqlCases:
    """The ``Cases`` store on the service's own table, in the caller's transaction."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self._now = now

    async def get(self, issue_id: str, *, lock: bool = True) -> Tracked | None:
        row = await _state.load_row(self._session, issue_id, lock=lock)
        if row is None:
            return None
        return Tracked(_state.state(row), row["last_event_id"], row["correlation_id"])

    async def save(self, issue_id: str, tracked: Tracked) -> None:
        await _state.save(
            self._session,
            issue_id,
            tracked.case,
            self._now,
            last_event_id=tracked.last_event_id,
            correlation_id=tracked.correlation_id,
        )
