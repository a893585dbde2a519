"""Working days: deadlines and look-back windows are counted on a working calendar."""

from __future__ import annotations

from datetime import date

import pytest

from shared.calendar import WeekdayCalendar, add_working_days

FRIDAY = date(2026, 11, 27)
SATURDAY = date(2026, 11, 28)
SUNDAY = date(2026, 11, 29)
MONDAY = date(2026, 11, 30)
TUESDAY = date(2026, 12, 1)

weekdays = WeekdayCalendar()


def test_one_working_day_after_a_friday_is_the_monday() -> None:
    assert add_working_days(weekdays, FRIDAY, 1) == MONDAY


def test_a_deadline_skips_the_weekend() -> None:
    assert add_working_days(weekdays, FRIDAY, 5) == date(2026, 12, 4)


def test_seven_working_days_after_a_friday_is_the_tuesday_a_week_and_a_half_later() -> None:
    assert add_working_days(weekdays, FRIDAY, 7) == date(2026, 12, 8)


def test_the_start_day_itself_does_not_count() -> None:
    assert add_working_days(weekdays, MONDAY, 1) == TUESDAY


@pytest.mark.parametrize("weekend_day", [SATURDAY, SUNDAY])
def test_counting_from_a_weekend_day_starts_on_the_monday(weekend_day: date) -> None:
    assert add_working_days(weekdays, weekend_day, 1) == MONDAY


def test_zero_working_days_is_the_start_day() -> None:
    assert add_working_days(weekdays, FRIDAY, 0) == FRIDAY


def test_a_negative_number_of_days_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        add_working_days(weekdays, FRIDAY, -1)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 11, 23), True),
        (date(2026, 11, 24), True),
        (date(2026, 11, 25), True),
        (date(2026, 11, 26), True),
        (FRIDAY, True),
        (SATURDAY, False),
        (SUNDAY, False),
    ],
)
def test_the_weekday_calendar_works_monday_to_friday(day: date, working: bool) -> None:
    assert weekdays.is_working_day(day) is working


class HolidayCalendar:
    """A statutory holiday on a Monday and a make-up working Saturday (调休)."""

    holidays = frozenset({MONDAY})
    make_up_days = frozenset({SATURDAY})

    def is_working_day(self, day: date) -> bool:
        if day in self.make_up_days:
            return True
        return day.weekday() < 5 and day not in self.holidays


def test_another_calendar_plugs_in_with_its_holidays_and_make_up_days() -> None:
    calendar = HolidayCalendar()

    assert add_working_days(calendar, FRIDAY, 1) == SATURDAY
    assert add_working_days(calendar, FRIDAY, 2) == TUESDAY
