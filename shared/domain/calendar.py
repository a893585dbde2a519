"""Working days: the rule deadlines and look-back windows are counted in.

The town counts on the Chinese official calendar: weekends off, statutory holidays off, and
the weekend days declared working days (调休) counted. ``OfficialCalendar`` reads it from the
maintained ``chinesecalendar`` package, with a local override file on top for town-specific
days and for years the package does not know yet. A day no source knows is counted Monday
to Friday, and a deadline that crosses such a day is **provisional**, with the reason: it is
recomputed (an event in the matter's history) once the override file or the package learns
that year. Nothing is guessed silently.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Literal, Protocol

import chinese_calendar  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, ValidationError

DayKind = Literal["workday", "holiday"]


class WorkingCalendar(Protocol):
    @property
    def name(self) -> str:
        """Which calendar this is: every deadline says which calendar produced it."""
        ...

    def is_working_day(self, day: date) -> bool: ...

    def knows(self, day: date) -> bool:
        """Whether an authoritative source says what ``day`` is (else: Monday to Friday)."""
        ...


class WeekdayCalendar:
    """Monday to Friday are working days (no holidays); it knows every day."""

    name = "weekdays"

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5

    def knows(self, day: date) -> bool:
        return True


@dataclass(frozen=True)
class Deadline:
    """A date counted in working days, the calendar that counted it, and whether it is
    provisional (it crossed days no source knows yet), with the reason."""

    day: date
    calendar: str
    provisional: bool = False
    note: str | None = None


def add_working_days(calendar: WorkingCalendar, start: date, days: int) -> date:
    """The date ``days`` working days after ``start`` (``start`` itself does not count)."""
    return deadline_after(calendar, start, days).day


def deadline_after(calendar: WorkingCalendar, start: date, days: int) -> Deadline:
    """``days`` working days after ``start``, provisional if it counted an unknown day."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = start
    remaining = days
    unknown: set[int] = set()
    while remaining:
        current += timedelta(days=1)
        if not calendar.knows(current):
            unknown.add(current.year)
        if calendar.is_working_day(current):
            remaining -= 1
    if not unknown:
        return Deadline(current, calendar.name)
    years = ", ".join(str(y) for y in sorted(unknown))
    note = (
        f"provisional: the official calendar for {years} is not known yet, so those days "
        "were counted Monday to Friday; it is recomputed when the calendar is published"
    )
    return Deadline(current, calendar.name, provisional=True, note=note)


def working_days_until(calendar: WorkingCalendar, start: date, end: date) -> int:
    """How many working days come after ``start`` up to and including ``end`` (0 when
    ``end`` is not after ``start``): ``deadline_after(start, n)`` is ``end`` for that ``n``
    when ``end`` is a working day."""
    count, current = 0, start
    while current < end:
        current += timedelta(days=1)
        if calendar.is_working_day(current):
            count += 1
    return count


def recount(calendar: WorkingCalendar, start: date, days: int, current: date) -> Deadline | None:
    """A provisional date (``current``, counted ``days`` from ``start``) counted again: the
    new deadline if it became firm or moved, else ``None``."""
    again = deadline_after(calendar, start, days)
    if again.provisional and again.day == current:
        return None
    return again


# ----------------------------------------------------------------------- the official calendar


class _Overrides(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    complete_years: tuple[int, ...] = ()
    days: dict[date, DayKind] = {}


class InvalidCalendar(ValueError):
    """The override file cannot be used; the message names the file and the fault."""


@dataclass(frozen=True)
class Overrides:
    """Town-specific days, and years the file covers completely (every other day of such
    a year is Monday to Friday)."""

    days: Mapping[date, DayKind] = field(default_factory=dict)
    complete_years: frozenset[int] = frozenset()

    @classmethod
    def load(cls, path: Path) -> Overrides:
        """Read ``path`` (TOML); a missing file means no overrides."""
        if not path.exists():
            return cls()
        try:
            with path.open("rb") as fh:
                parsed = _Overrides.model_validate(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
            raise InvalidCalendar(f"{path}: {exc}") from exc
        return cls(dict(parsed.days), frozenset(parsed.complete_years))


class OfficialCalendar:
    """The Chinese official calendar: the override file first, then ``chinesecalendar``,
    then (unknown, provisional) Monday to Friday.

    Each day is looked up once and kept: the package validates every date it is asked
    about against the range of its data (a ``min`` and ``max`` over every holiday it
    knows, about 50 µs), and a deadline of ten working days asks about two weeks of days
    twice. The answers cannot change while the process runs (the package and the override
    file are read once), so they are kept for good; a year is 365 entries.
    """

    def __init__(self, overrides: Overrides | None = None) -> None:
        self.overrides = overrides or Overrides()
        package = f"chinesecalendar {version('chinesecalendar')}"
        self.name = f"cn-official ({package}{' + overrides' if self.overrides.days else ''})"
        self._days: dict[date, tuple[bool, bool]] = {}  # day -> (known, working)

    def knows(self, day: date) -> bool:
        return self._day(day)[0]

    def is_working_day(self, day: date) -> bool:
        return self._day(day)[1]

    def _day(self, day: date) -> tuple[bool, bool]:
        found = self._days.get(day)
        if found is None:
            found = self._days[day] = self._look_up(day)
        return found

    def _look_up(self, day: date) -> tuple[bool, bool]:
        kind = self.overrides.days.get(day)
        if kind is not None:
            return True, kind == "workday"
        if day.year in self.overrides.complete_years:
            return True, day.weekday() < 5
        try:
            return True, bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # "no available data for year ...": Monday to Friday
            return False, day.weekday() < 5


CALENDAR_FILE = "calendar.toml"


def official(reference_dir: Path) -> OfficialCalendar:
    """The official calendar with the override file from the reference data directory."""
    return OfficialCalendar(Overrides.load(reference_dir / CALENDAR_FILE))


def configured(name: str, reference_dir: Path) -> WorkingCalendar:
    """The calendar a service counts on, by its setting (``MINQING_CALENDAR``)."""
    if name == "weekdays":
        return WeekdayCalendar()
    return official(reference_dir)
