"""Working days: the rule deadlines and look-back windows are counted in.

For now a working day is Monday to Friday; the Chinese official calendar (statutory
holidays and make-up working days) plugs in here as another ``WorkingCalendar``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Protocol


class WorkingCalendar(Protocol):
    @property
    def name(self) -> str:
        """Which calendar this is: every deadline says which calendar produced it."""
        ...

    def is_working_day(self, day: date) -> bool: ...


class WeekdayCalendar:
    """Monday to Friday are working days."""

    name = "weekdays"

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5


def add_working_days(calendar: WorkingCalendar, start: date, days: int) -> date:
    """The date ``days`` working days after ``start`` (``start`` itself does not count)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = start
    remaining = days
    while remaining:
        current += timedelta(days=1)
        if calendar.is_working_day(current):
            remaining -= 1
    return current
