"""The suite does not count on what the installed ``chinesecalendar`` does not know yet.

Deadlines are counted on the official calendar, which the package learns a year at a time
(each November or December), and a fresh clone installs the newest release: a test that
needed the coming year to be unknown passed on the day it was written and failed on every
clone after the release. Such a test names a calendar of its own
(``tests.support.calendars.KnownThrough``); this runs the unit tests that count on the
official calendar with the package taught one more year."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.examples import FEW_EXAMPLES
from tests.support.paths import ROOT, unit_tests

PLUGIN = "tests.support.calendar_next_year"
# The ways a test reaches the shipped official calendar (minqing.shared.domain.calendar).
OFFICIAL = re.compile(r"\b(?:OfficialCalendar|official|configured)\(")


def on_the_official_calendar() -> list[Path]:
    here = Path(__file__).resolve()
    tests = unit_tests()
    return [t for t in tests if t != here and OFFICIAL.search(t.read_text(encoding="utf-8"))]


def test_unit_tests_on_the_official_calendar_pass_once_it_knows_one_more_year() -> None:
    files = on_the_official_calendar()
    assert {f.name for f in files} >= {"test_calendar.py", "test_assignment_domain.py"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider"]
        + [str(f.relative_to(ROOT)) for f in files],
        cwd=ROOT,
        # What is checked is the calendar, not the exploration: property tests draw fewer.
        env={**os.environ, FEW_EXAMPLES: "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "chinesecalendar taught " in run.stdout  # the plugin was in effect
