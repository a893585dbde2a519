"""Trends for supervisors: matters received and loops closed per week, and how many were
overdue at the end of each week, for the matters the caller reaches.

A week runs Monday to Sunday in the town's time zone. Received: reported that week;
closed: the loop closed that week (the matter's latest close); overdue: as the statistics
count it (assigned or reopened, past its deadline) as the list stood at the end of the
week, or now for the week under way.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Select, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.views.issues import IssueFilter, filtered
from minqing.services.projection.views.issues.queries import source
from minqing.services.projection.views.issues.tables import issues

MAX_WEEKS = 53  # a longer range is refused: a year of weeks is what a chart can show
WEEK = timedelta(days=7)

Direction = Literal["rising", "falling", "steady"]


class TooManyWeeks(ValueError):
    """The range asked for spans more weeks than a trend shows, or ends before it starts."""


@dataclass(frozen=True)
class Week:
    start: date  # its Monday
    end: date  # its Sunday
    received: int
    closed: int
    overdue: int  # at the end of the week (now, for the week under way)


@dataclass(frozen=True)
class Trend:
    weeks: list[Week]
    # Overdue at the end of the last week against the week before it.
    overdue_direction: Direction


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weeks_of(first: date, last: date) -> list[date]:
    """The Mondays of the weeks from the one holding ``first`` to the one holding ``last``."""
    start, end = monday(first), monday(last)
    if end < start or (end - start) // WEEK >= MAX_WEEKS:
        raise TooManyWeeks(f"a trend shows 1 to {MAX_WEEKS} weeks: from must not be after to")
    return [start + WEEK * i for i in range((end - start) // WEEK + 1)]


async def weekly(
    session: AsyncSession, f: IssueFilter, first: date, last: date, now: datetime, timezone: str
) -> Trend:
    """The weeks from ``first`` to ``last`` (whole weeks) for the matters ``f`` selects."""
    zone = ZoneInfo(timezone)
    mondays = weeks_of(first, last)
    begin = datetime.combine(mondays[0], time.min, tzinfo=zone)
    finish = datetime.combine(mondays[-1] + WEEK, time.min, tzinfo=zone)
    received = await _per_week(session, f, "reported_at", begin, finish, timezone)
    closed = await _per_week(session, f, "closed_at", begin, finish, timezone)
    weeks = []
    for start in mondays:
        end_of_week = datetime.combine(start + WEEK, time.min, tzinfo=zone) - timedelta(
            microseconds=1
        )
        then = min(end_of_week, now)
        overdue = 0
        if then >= datetime.combine(start, time.min, tzinfo=zone):
            overdue = await _overdue_at(session, f, then, timezone)
        weeks.append(
            Week(
                start,
                start + timedelta(days=6),
                received.get(start, 0),
                closed.get(start, 0),
                overdue,
            )
        )
    return Trend(weeks, _direction(weeks))


def _direction(weeks: list[Week]) -> Direction:
    if len(weeks) < 2 or weeks[-1].overdue == weeks[-2].overdue:
        return "steady"
    return "rising" if weeks[-1].overdue > weeks[-2].overdue else "falling"


async def _per_week(
    session: AsyncSession,
    f: IssueFilter,
    column: str,
    begin: datetime,
    finish: datetime,
    timezone: str,
) -> dict[date, int]:
    at = issues.c[column]
    week = cast(func.date_trunc("week", func.timezone(timezone, at)), Date)
    counted = typing.cast("Select[Any]", select(week, func.count()))
    query = filtered(counted, f, issues).where(at >= begin, at < finish)
    rows = await session.execute(query.group_by(week))
    return {day: int(count) for day, count in rows}


async def _overdue_at(session: AsyncSession, f: IssueFilter, then: datetime, timezone: str) -> int:
    """Overdue as the list stood at ``then`` (past the deadline on that day in the town)."""
    day = then.astimezone(ZoneInfo(timezone)).date()
    at = replace(f, as_of=then, overdue_on=day)
    t = source(at)
    query = filtered(select(func.count()).select_from(t), at, t).where(t.c.status.is_not(None))
    return int((await session.execute(query)).scalar_one())
