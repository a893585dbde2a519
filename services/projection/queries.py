"""Read-side queries of the projection: the list, one matter, its audit trail."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.projection.domain import IssueView
from services.projection.store import events, issues


@dataclass(frozen=True)
class IssueFilter:
    status: str | None = None
    village: str | None = None
    unit: str | None = None
    category: str | None = None
    overdue_on: date | None = None  # only matters past their deadline on this date


def _filtered(query: Select[Any], f: IssueFilter) -> Select[Any]:
    for column in ("status", "village", "unit", "category"):
        value = getattr(f, column)
        if value is not None:
            query = query.where(issues.c[column] == value)
    if f.overdue_on is not None:
        query = query.where(
            issues.c.status.in_(("assigned", "reopened")), issues.c.deadline < f.overdue_on
        )
    return query


async def list_issues(
    session: AsyncSession, f: IssueFilter, *, limit: int, offset: int
) -> tuple[list[IssueView], int]:
    """One page of matters, newest first, and how many match in all."""
    total = await session.scalar(_filtered(select(func.count()).select_from(issues), f))
    rows = await session.execute(
        _filtered(select(issues), f).order_by(issues.c.issue_id.desc()).limit(limit).offset(offset)
    )
    return [_view(row._asdict()) for row in rows], int(total or 0)


async def get_issue(session: AsyncSession, issue_id: str) -> IssueView | None:
    row = (await session.execute(select(issues).where(issues.c.issue_id == issue_id))).first()
    return _view(row._asdict()) if row else None


async def history(session: AsyncSession, issue_id: str) -> list[dict[str, Any]]:
    """Every event of the matter in stream order."""
    rows = await session.execute(
        select(
            events.c.position,
            events.c.event_id.label("id"),
            events.c.type,
            events.c.time,
            events.c.actor,
            events.c.source,
            events.c.dataversion,
            events.c.correlationid,
            events.c.causationid,
            events.c.data,
        )
        .where(events.c.issue_id == issue_id)
        .order_by(events.c.position)
    )
    return [row._asdict() for row in rows]


def _view(values: dict[str, Any]) -> IssueView:
    return IssueView(**{f.name: values[f.name] for f in fields(IssueView)})
