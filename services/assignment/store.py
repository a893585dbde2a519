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
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.assignment.domain import Assignment, RegistryRow
from minqing.shared.contract.reference import Responsible
from minqing.shared.persistence.state import StateCache, StateTable
from minqing.shared.persistence.tables import plumbing_tables

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
    Column("status", Text, nullable=False),
    Column("scale", Text),
    Column("source", Text),
    Column("responsible_unit", Text),
    Column("rule_id", Text),
    Column("sent_back_reason", Text),
    Column("accepted_by", Text),
    Column("correlation_id", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

Index(
    "assignments_open_by_responsible_unit",
    assignments.c.responsible_unit,
    postgresql_where=text("status = 'assigned'"),
)

# The registry of units: who is responsible for each now, and what the reference files
# said when last read.
units = Table(
    "units",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("village", Text),
    Column("person_id", Text, nullable=False),
    Column("person_name", Text, nullable=False),
    Column("contact", Text, nullable=False),
    Column("seeded_person_id", Text, nullable=False),
    Column("seeded_person_name", Text, nullable=False),
    Column("seeded_contact", Text, nullable=False),
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
        self._now = now
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

    async def open_of_unit(self, unit: str) -> list[tuple[str, Assignment]]:
        query = select(assignments.c.issue_id).where(
            assignments.c.responsible_unit == unit, assignments.c.status == "assigned"
        )
        ids = list((await self._session.scalars(query)).all())
        await self._rows.preload(ids)
        found = [(i, await self.get(i)) for i in ids]
        return [(i, a) for i, a in found if a is not None]

    async def registry(self, *, lock: bool = False) -> dict[str, RegistryRow]:
        query = select(units).order_by(units.c.code)
        if lock:
            query = query.with_for_update()
        rows = (await self._session.execute(query)).all()
        return {row.code: _registry_row(row._asdict()) for row in rows}

    async def save_unit(self, row: RegistryRow) -> None:
        values = {
            **row.current.model_dump(exclude={"code"}),
            "code": row.current.code,
            "seeded_person_id": row.seeded_person_id,
            "seeded_person_name": row.seeded_person_name,
            "seeded_contact": row.seeded_contact,
            "updated_at": self._now,
        }
        statement = insert(units).values(values)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[units.c.code],
                set_={k: statement.excluded[k] for k in values if k != "code"},
            )
        )

    async def flush(self) -> None:
        await self._rows.flush()


def _registry_row(row: dict[str, object]) -> RegistryRow:
    current = Responsible.model_validate(
        {k: row[k] for k in Responsible.model_fields}, strict=False
    )
    return RegistryRow(
        current=current,
        seeded_person_id=str(row["seeded_person_id"]),
        seeded_person_name=str(row["seeded_person_name"]),
        seeded_contact=str(row["seeded_contact"]),
    )
