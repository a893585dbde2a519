"""The list of matters (台账): each matter's current state, folded incrementally.

A batch loads the touched matters' views in one query, applies each event in stream
order (parsed once), and upserts the changed views in one executemany. Only an event that
arrives behind the view's last position (a redelivery after a failure) triggers a re-fold
of that matter from the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    Select,
    Table,
    Text,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.projection.domain import IssueView, Recorded, fold, step
from services.projection.schema import metadata
from services.projection.views.history import recorded
from shared.bulk import column_names, executemany, insert_sql
from shared.consumer import Delivery, Outcome
from shared.envelope import NewerVersion, UnreadableEvent, decode, event_class
from shared.events import Event

NAME = "issues"

issues = Table(
    "issues",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("status", Text),
    Column("title", Text),
    Column("description", Text),
    Column("category", Text),
    Column("village", Text),
    Column("source", Text),
    Column("reporter_ref", Text),
    Column("reporter_phone_masked", Text),
    Column("external_ref", Text),
    Column("split_from", Text),
    Column("duplicate_count", Integer, nullable=False),
    Column("address", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("unit", Text),
    Column("responsible_person_id", Text),
    Column("responsible_person_name", Text),
    Column("deadline", Date),
    Column("deadline_calendar", Text),
    Column("deadline_provisional", Boolean, nullable=False),
    Column("deadline_note", Text),
    Column("assignment_no", Integer, nullable=False),
    Column("lookback_due", Date),
    Column("lookback_due_provisional", Boolean, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("escalated_to", Text),
    Column("reported_at", DateTime(timezone=True)),
    Column("assigned_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_event_at", DateTime(timezone=True)),
    Column("last_epoch", Integer, nullable=False),
    Column("last_position", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False),
)
Index("issues_status", issues.c.status)
Index("issues_village", issues.c.village)
Index("issues_unit", issues.c.unit)
Index("issues_category", issues.c.category)

_FIELDS = [f.name for f in fields(IssueView)]
_UPSERT = insert_sql(issues, "issue_id", update=True)
_COLUMNS = column_names(issues, "issue_id")
assert set(_COLUMNS) == set(_FIELDS), "the issues table and IssueView must match"


async def apply_batch(
    session: AsyncSession, deliveries: Sequence[Delivery]
) -> Mapping[str, Outcome]:
    """Fold a batch into the views it touches: a handful of statements whatever its size."""
    outcomes: dict[str, Outcome] = {}
    touched = list(dict.fromkeys(d.envelope.subject for d in deliveries))
    views = await _load(session, touched)
    changed: set[str] = set()
    behind: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        issue_id = delivery.envelope.subject
        try:
            event = _read(delivery)
        except NewerVersion as exc:
            outcomes[delivery.envelope.id] = Outcome(str(exc), waiting=True)
            continue
        view = views.get(issue_id)
        if view is None and event is None:
            continue  # an unknown type never makes a matter appear in the list
        view = view or IssueView(issue_id=issue_id)
        if (delivery.epoch, delivery.position) <= view.at:
            behind.setdefault(issue_id, []).append(delivery)
            continue
        views[issue_id] = step(view, event, _record(delivery))
        changed.add(issue_id)
    if behind:
        batch = {i: [d for d in deliveries if d.envelope.subject == i] for i in behind}
        views.update(await _refold(session, batch))
        changed.update(behind)
    rows = [_row(views[i]) for i in changed if i in views and views[i].status is not None]
    await executemany(session, _UPSERT, rows)
    return outcomes


def _read(delivery: Delivery) -> Event | None:
    """The known event, tolerantly; unknown types and unreadable data count as no event."""
    try:
        return decode(delivery.envelope)
    except UnreadableEvent:
        return None


def _record(delivery: Delivery) -> Recorded:
    e = delivery.envelope
    return Recorded(delivery.position, e.type, e.dataversion, e.time, e.data, delivery.epoch, e.id)


_SELECT_MANY = select(issues).where(
    issues.c.issue_id == any_(bindparam("ids", type_=ARRAY(Text)))
)  # one statement text whatever the batch size: prepared once


async def _load(session: AsyncSession, issue_ids: list[str]) -> dict[str, IssueView]:
    rows = await session.execute(_SELECT_MANY, {"ids": issue_ids})
    return {row.issue_id: _view(row._asdict()) for row in rows}


async def _refold(session: AsyncSession, behind: dict[str, list[Delivery]]) -> dict[str, IssueView]:
    """Matters that got an event behind their position: fold them again from the audit
    trail plus this batch's events of theirs."""
    stored = await recorded(session, list(behind))
    views = {}
    for issue_id, late in behind.items():
        records = {r.event_id: r for r in stored.get(issue_id, [])}
        for delivery in late:
            records.setdefault(delivery.envelope.id, _record(delivery))
        known = [r for r in records.values() if event_class(r.type) is not None]
        if known:
            views[issue_id] = fold(issue_id, records.values())
    return views


def _row(view: IssueView) -> tuple[Any, ...]:
    """The view as a row in the upsert's column order."""
    return tuple(getattr(view, name) for name in _COLUMNS)


def _view(values: dict[str, Any]) -> IssueView:
    return IssueView(**{name: values[name] for name in _FIELDS})


def filtered(query: Select[Any], f: IssueFilter) -> Select[Any]:
    for column in ("status", "village", "unit", "category"):
        value = getattr(f, column)
        if value is not None:
            query = query.where(issues.c[column] == value)
    if f.overdue_on is not None:
        query = query.where(
            issues.c.status.in_(("assigned", "reopened")), issues.c.deadline < f.overdue_on
        )
    return query


class IssueFilter:
    def __init__(
        self,
        status: str | None = None,
        village: str | None = None,
        unit: str | None = None,
        category: str | None = None,
        overdue_on: date | None = None,
    ) -> None:
        self.status, self.village, self.unit, self.category = status, village, unit, category
        self.overdue_on = overdue_on  # only matters past their deadline on this date


async def list_issues(
    session: AsyncSession, f: IssueFilter, *, limit: int, offset: int
) -> tuple[list[IssueView], int]:
    """One page of matters, newest first, and how many match in all."""
    total = await session.scalar(filtered(select(func.count()).select_from(issues), f))
    rows = await session.execute(
        filtered(select(issues), f).order_by(issues.c.issue_id.desc()).limit(limit).offset(offset)
    )
    return [_view(row._asdict()) for row in rows], int(total or 0)


async def get_issue(session: AsyncSession, issue_id: str) -> IssueView | None:
    row = (await session.execute(select(issues).where(issues.c.issue_id == issue_id))).first()
    return _view(row._asdict()) if row else None
