"""Assignment's own schema: the current assignment of each matter, and the plumbing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

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
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.assignment.domain import Assignment
from shared.state import StateCache, StateTable
from shared.tables import plumbing_tables

SCHEMA = "assignment"
metadata = MetaData(schema=SCHEMA)

assignments = Table(
    "assignments",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("category", Text, nullable=False),
    Column("village", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("person_id", Text, nullable=False),
    Column("person_name", Text, nullable=False),
    Column("deadline", Date, nullable=False),
    Column("assignment_no", Integer, nullable=False),
    Column("assigned_on", Date, nullable=False),
    Column("working_days", Integer, nullable=False),
    Column("calendar", Text, nullable=False),
    Column("deadline_provisional", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

Index(
    "assignments_provisional",
    assignments.c.issue_id,
    postgresql_where=text("deadline_provisional"),
)

plumbing = plumbing_tables(metadata)
_table = StateTable(assignments, Assignment)


class SqlAssignments:
    """The ``Assignments`` store on the service's own table, in the caller's transaction."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self._rows = StateCache(_table, session, now)

    async def preload(self, issue_ids: Sequence[str]) -> None:
        await self._rows.preload(issue_ids)

    async def get(self, issue_id: str) -> Assignment | None:
        row = await self._rows.get(issue_id)
        return None if row is None else _table.state(row)

    async def save(self, issue_id: str, assignment: Assignment) -> None:
        self._rows.put(issue_id, assignment)

    async def provisional(self) -> list[tuple[str, Assignment]]:
        query = select(assignments.c.issue_id).where(assignments.c.deadline_provisional)
        ids = list((await self._session.scalars(query)).all())
        await self._rows.preload(ids)  # locked; re-read, since a consumer may have moved on
        found = [(i, await self.get(i)) for i in ids]
        return [(i, a) for i, a in found if a is not None and a.deadline_provisional]

    async def flush(self) -> None:
        await self._rows.flush()
