"""Working days: deadlines and look-back windows are counted on a working calendar."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import chinese_calendar  # type: ignore[import-untyped]
import pytest

from minqing.shared.domain.calendar import (
    InvalidCalendar,
    OfficialCalendar,
    Overrides,
    WeekdayCalendar,
    add_working_days,
    configured,
    deadline_after,
)
from minqing.shared.service.settings import REFERENCE_DIR

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


official = OfficialCalendar()


def test_national_day_week_is_off_and_its_make_up_saturday_is_a_working_day() -> None:
    # 2026: 1-7 October off; Saturday 10 October is worked (调休).
    assert not official.is_working_day(date(2026, 10, 1))
    assert official.is_working_day(date(2026, 10, 10))
    assert add_working_days(official, date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert add_working_days(official, date(2026, 9, 30), 3) == date(2026, 10, 10)


def test_a_deadline_within_a_known_year_is_firm_and_names_the_calendar() -> None:
    deadline = deadline_after(official, date(2026, 9, 30), 3)

    assert not deadline.provisional and deadline.note is None
    assert deadline.calendar.startswith("cn-official (chinesecalendar ")


def test_a_deadline_crossing_into_an_unknown_year_is_provisional_with_the_reason() -> None:
    assert not official.knows(date(2099, 1, 1))

    deadline = deadline_after(official, date(2098, 12, 24), 10)

    assert deadline.provisional
    assert deadline.note is not None and "2099" in deadline.note
    assert deadline.day == add_working_days(weekdays, date(2098, 12, 24), 10)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_override_file_makes_an_unknown_year_known(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'complete_years = [2099]\n[days]\n2099-01-01 = "holiday"\n2099-01-03 = "workday"\n',
    )
    calendar = OfficialCalendar(Overrides.load(path))

    deadline = deadline_after(calendar, date(2098, 12, 31), 2)  # Thu 1 Jan off, Sat 3 worked

    assert (deadline.day, deadline.provisional) == (date(2099, 1, 3), False)
    assert calendar.name.endswith("+ overrides)")


def test_a_town_day_off_overrides_the_package_in_a_known_year(tmp_path: Path) -> None:
    calendar = OfficialCalendar(Overrides.load(write(tmp_path, '[days]\n2026-12-01 = "holiday"\n')))

    assert not calendar.is_working_day(date(2026, 12, 1))
    assert add_working_days(calendar, FRIDAY, 2) == date(2026, 12, 2)


@pytest.mark.parametrize(
    "text",
    [
        '[days]\n2026-13-01 = "holiday"\n',
        '[days]\n2026-12-01 = "off"\n',
        "complete = [2027]\n",
        "[days\n",
    ],
    ids=["bad date", "bad kind", "unknown key", "not toml"],
)
def test_a_bad_override_file_fails_loudly_naming_it(tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidCalendar, match=r"calendar\.toml"):
        Overrides.load(write(tmp_path, text))


def test_no_override_file_means_no_overrides(tmp_path: Path) -> None:
    assert Overrides.load(tmp_path / "missing.toml") == Overrides()


def test_the_shipped_override_file_loads() -> None:
    assert isinstance(configured("cn-official", REFERENCE_DIR), OfficialCalendar)
    assert configured("weekdays", REFERENCE_DIR).name == "weekdays"


def test_each_day_is_asked_of_the_package_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package validates every date against its whole range (slow); the calendar keeps
    each day's answer, and the answers are the package's."""
    asked: list[date] = []
    real = chinese_calendar.is_workday

    def counting(day: date) -> bool:
        asked.append(day)
        return bool(real(day))

    monkeypatch.setattr(chinese_calendar, "is_workday", counting)
    calendar = OfficialCalendar()
    first = deadline_after(calendar, date(2026, 9, 28), 7)  # across National Day week
    again = deadline_after(calendar, date(2026, 9, 28), 7)
    assert first == again
    assert len(asked) == len(set(asked)) == (first.day - date(2026, 9, 28)).days
    assert first.day > add_working_days(weekdays, date(2026, 9, 28), 7)  # the holiday week
