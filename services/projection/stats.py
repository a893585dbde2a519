"""Statistics for supervisors, each figure with the list of matters behind it.

Counts come from the list (one grouped query per dimension); look-back, satisfaction and
funds come from the audit trail, for the same matters (the list's filters apply to all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Numeric, and_, cast, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from services.projection.views.history import events
from services.projection.views.issues import IssueFilter, filtered, issues

# Counted by each of these; the responsible person is the workload per person (by id).
DIMENSIONS = ("status", "source", "category", "village", "unit", "responsible_person_id")
# The list's query parameter for each dimension.
PARAMETER = {"responsible_person_id": "responsible"}
LIST = "/api/v1/issues"


@dataclass(frozen=True)
class Figure:
    """One number, and where its matters are listed (``None`` if no list filter says it)."""

    value: float | int | str | None
    list: str | None = None


@dataclass
class Statistics:
    matters: Figure
    closed_loop: Figure
    overdue: Figure
    response_rate: Figure
    resolution_rate: Figure
    satisfaction_rate: Figure
    on_time_rate: Figure
    median_days_to_resolve: Figure
    lookback_pass_rate: Figure
    by: dict[str, dict[str, Figure]] = field(default_factory=dict)
    funds: dict[str, dict[str, str]] = field(default_factory=dict)


def _link(base: dict[str, str], **more: str) -> str:
    query = {**base, **more}
    return f"{LIST}?{urlencode(query)}" if query else LIST


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def statistics(
    session: AsyncSession, f: IssueFilter, base: dict[str, str], today: date, timezone: str
) -> Statistics:
    """The figures for the matters ``f`` selects; ``base`` is the same filter as query
    parameters, for the links."""
    chosen = filtered(select(issues.c.issue_id), f).subquery()
    of_chosen = issues.c.issue_id.in_(select(chosen.c.issue_id))

    totals = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(issues.c.status == "closed"),
                func.count().filter(issues.c.assigned_at.is_not(None)),
                func.count().filter(issues.c.status.in_(("resolved", "closed"))),
                func.count().filter(
                    issues.c.status.in_(("assigned", "reopened")), issues.c.deadline < today
                ),
                func.count().filter(issues.c.resolved_at.is_not(None)),
                func.count().filter(
                    issues.c.resolved_at.is_not(None),
                    func.date(func.timezone(timezone, issues.c.resolved_at)) <= issues.c.deadline,
                ),
                func.percentile_cont(0.5).within_group(
                    func.extract("epoch", issues.c.resolved_at - issues.c.reported_at) / 86400
                ),
            ).where(of_chosen)
        )
    ).one()
    total, closed, responded, resolved, overdue, ever_resolved, on_time, median = totals

    by: dict[str, dict[str, Figure]] = {}
    for dimension in DIMENSIONS:
        column = issues.c[dimension]
        rows = await session.execute(
            select(column, func.count()).where(of_chosen).group_by(column).order_by(column)
        )
        by[dimension] = {
            str(value): Figure(
                count, _link(base, **{PARAMETER.get(dimension, dimension): str(value)})
            )
            for value, count in rows
            if value is not None
        }

    kinds = await _event_counts(session, of_chosen)
    passed, failed = (
        kinds.get("minqing.issue.lookback_passed", 0),
        kinds.get("minqing.issue.lookback_failed", 0),
    )
    satisfied, rated = await _satisfaction(session, of_chosen)
    return Statistics(
        matters=Figure(total, _link(base)),
        closed_loop=Figure(closed, _link(base, status="closed")),
        overdue=Figure(overdue, _link(base, overdue="true")),
        response_rate=Figure(_rate(responded, total), _link(base)),
        resolution_rate=Figure(_rate(resolved, total), _link(base)),
        satisfaction_rate=Figure(_rate(satisfied, rated)),
        on_time_rate=Figure(_rate(on_time, ever_resolved)),
        median_days_to_resolve=Figure(None if median is None else round(float(median), 2)),
        lookback_pass_rate=Figure(_rate(passed, passed + failed)),
        by=by,
        funds=await _funds(session, of_chosen),
    )


async def _event_counts(session: AsyncSession, of_chosen: Any) -> dict[str, int]:
    rows = await session.execute(
        select(events.c.type, func.count())
        .where(events.c.issue_id.in_(select(issues.c.issue_id).where(of_chosen)))
        .group_by(events.c.type)
    )
    return {str(kind): int(count) for kind, count in rows}


async def _satisfaction(session: AsyncSession, of_chosen: Any) -> tuple[int, int]:
    """Feedback scores of 4 or 5, and all feedback given."""
    score = cast(events.c.data["score"].astext, Numeric)
    row = (
        await session.execute(
            select(func.count().filter(score >= 4), func.count()).where(
                events.c.type == "minqing.issue.feedback_recorded",
                events.c.issue_id.in_(select(issues.c.issue_id).where(of_chosen)),
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def _funds(session: AsyncSession, of_chosen: Any) -> dict[str, dict[str, str]]:
    """Each funding entry at its latest status, summed by source and status, in yuan."""
    data = events.c.data
    funding_id = data["funding_id"].astext  # one expression: DISTINCT ON must match ORDER BY
    latest = (
        select(
            data["source"].astext.label("source"),
            data["status"].astext.label("status"),
            cast(data["amount"].astext, Numeric).label("amount"),
        )
        .ext(distinct_on(funding_id))
        .where(
            and_(
                events.c.type == "minqing.issue.funding_recorded",
                events.c.issue_id.in_(select(issues.c.issue_id).where(of_chosen)),
            )
        )
        .order_by(funding_id, events.c.log_seq.desc())
        .subquery()
    )
    rows = await session.execute(
        select(latest.c.source, latest.c.status, func.sum(latest.c.amount)).group_by(
            latest.c.source, latest.c.status
        )
    )
    found: dict[str, dict[str, str]] = {}
    for source, status, amount in rows:
        yuan = Decimal(amount).quantize(Decimal("0.01"))
        found.setdefault(str(source), {})[str(status)] = str(yuan)
    return found
