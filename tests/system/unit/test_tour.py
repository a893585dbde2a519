"""The README's tour of the pages shows pictures the browser tests take: each picture it
shows is in docs/images/tour, each one there is listed in tests/support/tour.py, and
each listed screen is one a browser test takes."""

from __future__ import annotations

import re

from tests.support.paths import ROOT
from tests.support.tour import TOUR

TOUR_DIR = ROOT / "docs" / "images" / "tour"


def test_the_readme_shows_the_pictures_make_screenshots_takes() -> None:
    shown = set(re.findall(r"docs/images/tour/([\w.-]+)", (ROOT / "README.md").read_text()))
    kept = {path.name for path in TOUR_DIR.iterdir()}
    assert shown == kept == set(TOUR.values())


def test_each_listed_screen_is_taken_by_a_browser_test() -> None:
    tests = {path.stem: path.read_text() for path in (ROOT / "tests" / "e2e").glob("test_*.py")}
    for screen in TOUR:
        page, _, name = screen.partition("-")
        taken = [
            stem
            for stem, text in tests.items()
            if f'"{screen}.png"' in text
            or f'"{screen}"' in text
            or (f'"{name}")' in text and f'f"{page}-{{name}}' in text)
        ]
        assert taken, f"no browser test takes {screen}"
