"""A pytest plugin (``-p tests.support.calendar_next_year``): ``chinesecalendar`` as its
next release will be, knowing the year after the last one it knows (New Year's Day off).

A fresh clone installs the newest release, and a release learns a year each November or
December: run tests under this plugin to show they do not count on that year being unknown.
"""

from __future__ import annotations

from datetime import date

import chinese_calendar  # type: ignore[import-untyped]
import pytest
from chinese_calendar import constants

LEARNT = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    known = max(constants.holidays).year
    constants.holidays[date(known + 1, 1, 1)] = constants.Holiday.new_years_day.value
    # The package answers for the new year now, and New Year's Day is off in it.
    assert not chinese_calendar.is_workday(date(known + 1, 1, 1))
    config.stash[LEARNT] = known + 1


def pytest_report_header(config: pytest.Config) -> str:
    return f"chinesecalendar taught {config.stash[LEARNT]} (New Year's Day off)"
