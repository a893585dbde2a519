"""Followup's own schema: the case of each matter, and the plumbing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

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
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.followup.domain import (
    Case,
    Funding,
    Milestone,
    has_provisional_milestones,
    next_milestone_due,
)
from minqing.services.followup.handlers import FundTotal, Tracked
from minqing.services.followup.linestaff import Staff
from minqing.shared.ingress.outcomes import outcomes_table
from minqing.shared.persistence.state import Row, StateCache, StateTable
from minqing.shared.persistence.tables import plumbing_tables

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
    Column("deadline_calendar", Text),
    Column("lookback_provisional", Boolean, nullable=False),
    Column("responsible_person_id", Text),
    Column("responsible_person_name", Text),
    Column("overdue_kind", Text),
    Column("overdue_due", Date),
    Column("escalation_level", Integer, nullable=False),
    Column("plan_template", Text),
    Column("plan_counted_from", Date),
    Column("milestones", Text, nullable=False),  # JSON list, see _CaseTable
    Column("milestone_due", Date),  # the earliest due date of a milestone not done
    Column("milestones_provisional", Boolean, nullable=False),  # one not done is provisional
    Column("funds", Text, nullable=False),  # JSON list, see _CaseTable
    Column("resolved_by", Text),
    Column("lookback_unit", Text),
    Column("lookback_failures", Integer, nullable=False),
    Column("source", Text),
    Column("external_ref", Text),
    Column("title", Text),
    Column("village", Text),
    Column("address", Text),
    Column("summary", Text),
    Column("revisit_reason", Text),
    Column("revisit_due", Date),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

Index("cases_provisional", cases.c.issue_id, postgresql_where=text("lookback_provisional"))
Index("cases_deadline_waiting", cases.c.deadline, postgresql_where=text("status = 'assigned'"))
Index("cases_lookback_waiting", cases.c.lookback_due, postgresql_where=text("status = 'resolved'"))
Index(
    "cases_milestone_waiting", cases.c.milestone_due, postgresql_where=text("status = 'assigned'")
)

Index(
    "cases_external_ref",
    cases.c.source,
    cases.c.external_ref,
    postgresql_where=text("external_ref is not null"),
)

# The registry of line staff (services/followup/linestaff.py): who looks back as line staff
# of which unit, in which villages (JSON list; empty: all), and what the reference file
# said when last read (``seeded``; null for a person added by hand). A removed person's row
# stays, inactive, so the file does not bring them back.
line_staff = Table(
    "line_staff",
    metadata,
    Column("person_id", Text, primary_key=True),
    Column("person_name", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("villages", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("seeded", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Department systems' progress and resolutions: their outcomes, and (external=True) the
# outcomes and dead letters published to streams of their own.
ingress_outcomes = outcomes_table(metadata)
plumbing = plumbing_tables(metadata, external=True)


class _CaseTable(StateTable[Case]):
    """A case's plan and funds are kept as JSON text beside its plain columns."""

    def state(self, row: Row) -> Case:
        milestones = tuple(
            Milestone(**{**m, "due": date.fromisoformat(m["due"])})
            for m in _loads(row["milestones"])
        )
        funds = tuple(
            Funding(**{**f, "amount": Decimal(f["amount"])}) for f in _loads(row["funds"])
        )
        return super().state({**row, "milestones": milestones, "funds": funds})

    def row(self, issue_id: str, state: Case, now: datetime, **extra: Any) -> Row:
        row = super().row(issue_id, state, now, **extra)
        row["milestones"] = _dumps(state.milestones)
        row["funds"] = _dumps(state.funds)
        row["milestone_due"] = next_milestone_due(state)
        row["milestones_provisional"] = has_provisional_milestones(state)
        return row


def _loads(text: str) -> list[dict[str, Any]]:
    return [] if text == "[]" else list(json.loads(text))  # most matters have neither


def _dumps(items: tuple[Milestone, ...] | tuple[Funding, ...]) -> str:
    return json.dumps([asdict(i) for i in items], default=str) if items else "[]"


_table = _CaseTable(cases, Case)

_FUND_TOTALS = text(
    """
    select f->>'source' as source, f->>'status' as status,
           sum((f->>'amount')::numeric) as amount, count(*) as entries,
           count(distinct c.issue_id) as matters
    from followup.cases c, jsonb_array_elements(c.funds::jsonb) f
    group by 1, 2 order by 1, 2
    """
)


class SqlCases:
    """The ``Cases`` store on the service's own table, in the caller's transaction."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self._rows = StateCache(_table, session, now)

    async def provisional(self) -> list[tuple[str, Tracked]]:
        query = select(cases.c.issue_id).where(
            or_(cases.c.lookback_provisional, cases.c.milestones_provisional)
        )
        ids = list((await self._session.scalars(query)).all())
        await self._rows.preload(ids)  # locked; re-read, since a consumer may have moved on
        found = [(i, await self.get(i)) for i in ids]
        return [
            (i, t)
            for i, t in found
            if t is not None and (t.case.lookback_provisional or has_provisional_milestones(t.case))
        ]

    async def past_due(self, today: date) -> list[tuple[str, Tracked]]:
        query = select(cases.c.issue_id).where(
            or_(
                and_(cases.c.status == "assigned", cases.c.deadline < today),
                and_(cases.c.status == "resolved", cases.c.lookback_due < today),
                and_(cases.c.status == "assigned", cases.c.milestone_due < today),
            )
        )
        ids = list((await self._session.scalars(query)).all())
        await self._rows.preload(ids)  # locked; re-read, since a consumer may have moved on
        found = [(i, await self.get(i)) for i in ids]
        return [(i, t) for i, t in found if t is not None]

    async def fund_totals(self) -> list[FundTotal]:
        rows = await self._session.execute(_FUND_TOTALS)
        return [FundTotal(**row._asdict()) for row in rows]

    async def awaiting_lookback(
        self, unit: str, reviewed: Sequence[str], villages: Sequence[str]
    ) -> list[tuple[str, Case]]:
        """Resolved matters whose look-back falls to ``unit`` (named on the matter; on
        matters resolved before that was recorded, the units it looks back at, ``reviewed``),
        and closed ones a resident's low score sent back for a re-visit; in ``villages``
        (all when none), not locked."""
        by_unit = or_(
            cases.c.lookback_unit == unit,
            and_(cases.c.lookback_unit.is_(None), cases.c.unit.in_(list(reviewed))),
        )
        waiting = or_(
            cases.c.status == "resolved",
            and_(cases.c.status == "closed", cases.c.revisit_reason.is_not(None)),
        )
        query = select(cases).where(by_unit, waiting)
        if villages:
            query = query.where(cases.c.village.in_(list(villages)))
        rows = (await self._session.execute(query)).all()
        return [(row.issue_id, _table.state(row._asdict())) for row in rows]

    async def by_external_ref(self, source: str, external_ref: str) -> str | None:
        query = select(cases.c.issue_id).where(
            cases.c.source == source, cases.c.external_ref == external_ref
        )
        found: str | None = (await self._session.scalars(query.limit(1))).first()
        return found

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


class SqlLineStaff:
    """The registry of line staff on the service's own table, in the caller's transaction."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self._now = now

    async def registry(self, *, lock: bool = False) -> dict[str, Staff]:
        query = select(line_staff).order_by(line_staff.c.person_id)
        if lock:
            query = query.with_for_update()
        rows = (await self._session.execute(query)).all()
        return {row.person_id: _staff(row._asdict()) for row in rows}

    async def get(self, person_id: str) -> Staff | None:
        query = select(line_staff).where(line_staff.c.person_id == person_id)
        row = (await self._session.execute(query)).first()
        return None if row is None else _staff(row._asdict())

    async def save(self, staff: Staff) -> None:
        values = {
            "person_id": staff.person_id,
            "person_name": staff.person_name,
            "unit": staff.unit,
            "villages": json.dumps(list(staff.villages)),
            "active": staff.active,
            "seeded": staff.seeded,
            "updated_at": self._now,
        }
        statement = insert(line_staff).values(values)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[line_staff.c.person_id],
                set_={k: statement.excluded[k] for k in values if k != "person_id"},
            )
        )

    async def flush(self) -> None:
        return None


def _staff(row: dict[str, Any]) -> Staff:
    return Staff(
        person_id=row["person_id"],
        person_name=row["person_name"],
        unit=row["unit"],
        villages=tuple(json.loads(row["villages"])),
        active=bool(row["active"]),
        seeded=row["seeded"],
    )
