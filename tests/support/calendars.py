"""Working calendars whose knowledge does not grow with the date a clone is made.

``chinesecalendar`` learns each year when the State Council publishes its arrangement
(November or December), and a fresh clone installs the newest release: a test that needs
a year to be unknown must say so itself, not rely on the installed package not knowing it.
"""

from __future__ import annotations

from datetime import date

from minqing.shared.domain.calendar import WorkingCalendar


class KnownThrough:
    """``calendar`` as it stood before ``last + 1`` was published: its days up to the end
    of ``last``; after that, unknown and counted Monday to Friday (as the official calendar
    counts a year no source knows)."""

    def __init__(self, calendar: WorkingCalendar, last: int) -> None:
        self._calendar = calendar
        self._last = last
        self.name = calendar.name

    def knows(self, day: date) -> bool:
        return day.year <= self._last and self._calendar.knows(day)

    def is_working_day(self, day: date) -> bool:
        if day.year <= self._last:
            return self._calendar.is_working_day(day)
        return day.weekday() < 5
