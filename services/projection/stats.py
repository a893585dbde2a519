"""Statistics for supervisors, each figure with the list of matters behind it.

Totals and counts come from the list (the counts by every dimension in one grouping-sets
pass); look-back, satisfaction and funds from the audit trail under a small partial index,
for the same matters (the list's filters apply to all). With ``as_of``, the list is each
matter's state then and the audit trail what was recorded by then.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Numeric, Subquery, cast, func, select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.views.history import (
    FEEDBACK,
    FUNDING,
    LOOKBACK_FAILED,
    LOOKBACK_PASSED,
    events,
)
from minqing.services.projection.views.issues import IssueFilter, filtered, source

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
    """The figures for the matters ``f`` selects (as they stood at ``f.as_of``, if given);
    ``base`` is the same filter as query parameters, for the links."""
    t = source(f)
    chosen = filtered(select(t).where(t.c.status.is_not(None)), f, t).subquery("chosen")
    c = chosen.c
    totals = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(c.status == "closed"),
                func.count().filter(c.assigned_at.is_not(None)),
                func.count().filter(c.status.in_(("resolved", "closed"))),
                func.count().filter(c.status.in_(("assigned", "reopened")), c.deadline < today),
                func.count().filter(c.resolved_at.is_not(None)),
                func.count().filter(
                    c.resolved_at.is_not(None),
                    func.date(func.timezone(timezone, c.resolved_at)) <= c.deadline,
                ),
                func.percentile_cont(0.5).within_group(
                    func.extract("epoch", c.resolved_at - c.reported_at) / 86400
                ),
            )
        )
    ).one()
    total, closed, responded, resolved, overdue, ever_resolved, on_time, median = totals
    by = await _counts(session, chosen, base)

    # Figures from the audit trail: for the chosen matters (all of them need no test), and
    # only what was recorded by ``as_of``.
    of_chosen: list[ColumnElement[bool]] = []
    if replace(f, as_of=None) != IssueFilter():
        of_chosen.append(events.c.issue_id.in_(select(c.issue_id)))
    if f.as_of is not None:
        of_chosen.append(events.c.time <= f.as_of)
    kinds = await _event_counts(session, of_chosen)
    passed, failed = kinds.get(LOOKBACK_PASSED, 0), kinds.get(LOOKBACK_FAILED, 0)
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


async def _counts(
    session: AsyncSession, chosen: Subquery, base: dict[str, str]
) -> dict[str, dict[str, Figure]]:
    """Counts by each dimension, in one pass (grouping sets)."""
    columns = [chosen.c[d] for d in DIMENSIONS]
    rows = await session.execute(
        select(*columns, func.grouping(*columns), func.count()).group_by(
            func.grouping_sets(*(tuple_(col) for col in columns))
        )
    )
    by: dict[str, dict[str, Figure]] = {d: {} for d in DIMENSIONS}
    everything = (1 << len(DIMENSIONS)) - 1
    for row in rows:
        *values, grouping, count = row
        # GROUPING() sets a bit per column *not* grouped by, the first column's highest.
        index = len(DIMENSIONS) - (everything ^ grouping).bit_length()
        value = values[index]
        if value is None:
            continue
        dimension = DIMENSIONS[index]
        name = PARAMETER.get(dimension, dimension)
        by[dimension][str(value)] = Figure(count, _link(base, **{name: str(value)}))
    return {d: dict(sorted(by[d].items())) for d in DIMENSIONS}


async def _event_counts(
    session: AsyncSession, of_chosen: list[ColumnElement[bool]]
) -> dict[str, int]:
    rows = await session.execute(
        select(events.c.type, func.count())
        .where(events.c.type.in_((LOOKBACK_PASSED, LOOKBACK_FAILED)), *of_chosen)
        .group_by(events.c.type)
    )
    return {str(kind): int(count) for kind, count in rows}


async def _satisfaction(
    session: AsyncSession, of_chosen: list[ColumnElement[bool]]
) -> tuple[int, int]:
    """Feedback scores of 4 or 5, and all feedback given."""
    score = cast(events.c.data["score"].astext, Numeric)
    row = (
        await session.execute(
            select(func.count().filter(score >= 4), func.count()).where(
                events.c.type == FEEDBACK, *of_chosen
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def _funds(
    session: AsyncSession, of_chosen: list[ColumnElement[bool]]
) -> dict[str, dict[str, str]]:
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
        .where(events.c.type == FUNDING, *of_chosen)
        .order_by(funding_id, events.c.log_seq.desc())
        .subquery()
    )
    rows = await session.execute(
        select(latest.c.source, latest.c.status, func.sum(latest.c.amount)).group_by(
            latest.c.source, latest.c.status
        )
    )
    found: dict[str, dict[str, str]] = {}
    for funded_by, status, amount in rows:
        yuan = Decimal(amount).quantize(Decimal("0.01"))
        found.setdefault(str(funded_by), {})[str(status)] = str(yuan)
    return found
