"""The periodic report (月度通报): for a month, a quarter or any range of days, the town's
figures and each village's and each unit's, a ranking of the villages and of the units by
a documented score, and the change from the period before.

The matters of a period are those reported in it (days in the town's time zone). Each
figure is the statistics' (``stats.py``) for those matters, as they stood at ``as_of``: a
report made later with the same ``as_of`` is the same report, whatever happened since.

The score (0–100) weighs the rates the town is judged by: resolution 30%, satisfaction
30%, on time 20%, look-back passed 20%. A rate with nothing to measure (no feedback yet,
no look-back yet) is left out and the others' weights are scaled up; a village or unit
with no rate at all has no score and is listed after those ranked. Ties keep the order of
more matters first, then the code.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection import stats
from minqing.services.projection.views.issues import IssueFilter, filtered, source

WEIGHTS: dict[str, float] = {
    "resolution_rate": 0.3,
    "satisfaction_rate": 0.3,
    "on_time_rate": 0.2,
    "lookback_pass_rate": 0.2,
}
RATES = (
    "response_rate",
    "resolution_rate",
    "satisfaction_rate",
    "on_time_rate",
    "lookback_pass_rate",
)
COUNTS = ("matters", "closed_loop", "overdue", "escalated")
MAX_DAYS = 366


class BadPeriod(ValueError):
    """A period that cannot be read, or is empty or longer than a year."""


@dataclass(frozen=True)
class Period:
    """Days ``first`` to ``last`` (both included), as the report names them."""

    first: date
    last: date
    label: str

    @classmethod
    def read(cls, period: str | None, first: date | None, last: date | None) -> Period:
        """``2026-11`` (a month), ``2026-Q4`` (a quarter), or ``first``..``last``."""
        if period is not None:
            if first is not None or last is not None:
                raise BadPeriod("give period, or from and to, not both")
            if month := re.fullmatch(r"(\d{4})-(\d{2})", period):
                year, number = int(month[1]), int(month[2])
                if not 1 <= number <= 12:
                    raise BadPeriod(f"period {period!r}: no month {number}")
                days = calendar.monthrange(year, number)[1]
                return cls(date(year, number, 1), date(year, number, days), period)
            if quarter := re.fullmatch(r"(\d{4})-Q([1-4])", period):
                year, number = int(quarter[1]), int(quarter[2])
                start = date(year, 3 * number - 2, 1)
                end_month = 3 * number
                end = date(year, end_month, calendar.monthrange(year, end_month)[1])
                return cls(start, end, period)
            raise BadPeriod(f"period {period!r}: expected YYYY-MM or YYYY-Qn")
        if first is None or last is None:
            raise BadPeriod("give period (YYYY-MM or YYYY-Qn), or both from and to")
        if last < first:
            raise BadPeriod(f"to ({last}) is before from ({first})")
        if (last - first).days + 1 > MAX_DAYS:
            raise BadPeriod(f"at most {MAX_DAYS} days")
        return cls(first, last, f"{first.isoformat()}..{last.isoformat()}")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        """The period before: the month or quarter before, or as many days just before."""
        if re.fullmatch(r"\d{4}-\d{2}", self.label):
            before = self.first - timedelta(days=1)
            return Period.read(f"{before.year:04d}-{before.month:02d}", None, None)
        if re.fullmatch(r"\d{4}-Q[1-4]", self.label):
            before = self.first - timedelta(days=1)
            return Period.read(f"{before.year:04d}-Q{(before.month - 1) // 3 + 1}", None, None)
        last = self.first - timedelta(days=1)
        return Period.read(None, last - timedelta(days=self.days - 1), last)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """Its first midnight and the midnight after its last day, in the town."""
        return (
            datetime.combine(self.first, time.min, tzinfo=zone),
            datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=zone),
        )


def score(rates: Mapping[str, float | None]) -> float | None:
    """The weighted score, 0–100, of the rates there are (module docstring)."""
    present = [(weight, rates.get(name)) for name, weight in WEIGHTS.items()]
    measured = [(weight, value) for weight, value in present if value is not None]
    if not measured:
        return None
    weights = sum(weight for weight, _ in measured)
    return round(100 * sum(weight * value for weight, value in measured) / weights, 1)


@dataclass
class Figures:
    """One scope's figures for a period."""

    matters: int
    by_channel: dict[str, int]
    closed_loop: int
    overdue: int
    escalated: int
    response_rate: float | None
    resolution_rate: float | None
    satisfaction_rate: float | None
    on_time_rate: float | None
    lookback_pass_rate: float | None
    funds: dict[str, dict[str, str]]
    score: float | None = None

    def change(self, before: Figures) -> dict[str, float | int | None]:
        """This period's counts and rates less the period before's (None: not both)."""
        found: dict[str, float | int | None] = {}
        for name in (*COUNTS, *RATES, "score"):
            now, then = getattr(self, name), getattr(before, name)
            found[name] = None if now is None or then is None else round(now - then, 4)
        return found


@dataclass
class Ranked:
    code: str
    name: str
    rank: int | None  # None: no score (nothing to measure)
    figures: Figures
    change: dict[str, float | int | None] = field(default_factory=dict)


@dataclass
class Report:
    period: Period
    previous: Period
    as_of: datetime | None
    town: Figures
    town_change: dict[str, float | int | None]
    villages: list[Ranked]
    units: list[Ranked]
    weights: dict[str, float] = field(default_factory=lambda: dict(WEIGHTS))


async def figures(session: AsyncSession, f: IssueFilter, today: date, timezone: str) -> Figures:
    """The figures of the matters ``f`` selects (``stats.statistics``), and how many of
    them were escalated."""
    found = await stats.statistics(session, f, {}, today, timezone)
    t = source(f)
    chosen = filtered(select(t).where(t.c.status.is_not(None)), f, t).subquery("chosen")
    escalated = await session.scalar(
        select(func.count()).select_from(chosen).where(chosen.c.escalation_level > 0)
    )
    rates = {name: getattr(found, name).value for name in RATES}
    result = Figures(
        matters=int(found.matters.value or 0),
        by_channel={k: int(v.value or 0) for k, v in found.by.get("source", {}).items()},
        closed_loop=int(found.closed_loop.value or 0),
        overdue=int(found.overdue.value or 0),
        escalated=int(escalated or 0),
        funds=found.funds,
        **rates,
    )
    result.score = score(rates)
    return result


def ranked(
    scopes: Mapping[str, Figures],
    before: Mapping[str, Figures],
    names: Mapping[str, str],
) -> list[Ranked]:
    """Scopes by score (highest first), ties by more matters, then code; unscored last."""
    order = sorted(
        scopes.items(),
        key=lambda item: (
            item[1].score is None,
            -(item[1].score or 0.0),
            -item[1].matters,
            item[0],
        ),
    )
    result: list[Ranked] = []
    for place, (code, found) in enumerate(order, start=1):
        earlier = before.get(code)
        result.append(
            Ranked(
                code=code,
                name=names.get(code, code),
                rank=None if found.score is None else place,
                figures=found,
                change=found.change(earlier) if earlier is not None else {},
            )
        )
    return result


async def report(
    session: AsyncSession,
    period: Period,
    *,
    as_of: datetime | None,
    today: date,
    timezone: str,
    village_names: Mapping[str, str],
    unit_names: Mapping[str, str],
) -> Report:
    """The report of ``period`` as it stood at ``as_of`` (None: now), for the whole town."""
    zone = ZoneInfo(timezone)
    previous = period.previous()

    async def scope(p: Period, village: str | None = None, unit: str | None = None) -> Figures:
        start, end = p.bounds(zone)
        f = IssueFilter(
            reported_from=start, reported_to=end, as_of=as_of, village=village, unit=unit
        )
        return await figures(session, f, today, timezone)

    town, town_before = await scope(period), await scope(previous)
    villages, units = await _scopes(session, period, previous, zone, as_of)
    now_v = {code: await scope(period, village=code) for code in villages}
    before_v = {code: await scope(previous, village=code) for code in villages}
    now_u = {code: await scope(period, unit=code) for code in units}
    before_u = {code: await scope(previous, unit=code) for code in units}
    return Report(
        period=period,
        previous=previous,
        as_of=as_of,
        town=town,
        town_change=town.change(town_before),
        villages=ranked(now_v, before_v, village_names),
        units=ranked(now_u, before_u, unit_names),
    )


async def _scopes(
    session: AsyncSession,
    period: Period,
    previous: Period,
    zone: ZoneInfo,
    as_of: datetime | None,
) -> tuple[Sequence[str], Sequence[str]]:
    """The villages and units with matters in the period or the one before."""
    start, _ = previous.bounds(zone)
    _, end = period.bounds(zone)
    f = IssueFilter(reported_from=start, reported_to=end, as_of=as_of)
    t = source(f)
    chosen = filtered(select(t).where(t.c.status.is_not(None)), f, t).subquery("chosen")
    villages = await session.scalars(
        select(chosen.c.village).where(chosen.c.village.is_not(None)).distinct()
    )
    units = await session.scalars(
        select(chosen.c.unit).where(chosen.c.unit.is_not(None)).distinct()
    )
    return sorted(villages), sorted(units)
