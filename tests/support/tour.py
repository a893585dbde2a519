"""The README's tour of the people's pages, taken from the browser tests themselves: when
``MINQING_TOUR_DIR`` is set (``make screenshots``), a test's screenshot whose name is
listed here is also saved there, as a compressed JPEG of the viewport (what a person
sees first), under the name the README uses. Unset, nothing is written beside the test
artifacts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Page

# test screenshot name -> the tour's file name (docs/images/tour/)
TOUR = {
    "workbench-phone-list": "workbench-phone.jpg",
    "workbench-phone-resolve": "workbench-resolve-phone.jpg",
    "workbench-desktop-lookback": "lookbacks-desktop.jpg",
    "visit-waiting-phone": "visit-offline-phone.jpg",
    "residents-report-phone": "report-phone.jpg",
    "residents-follow-phone": "follow-phone.jpg",
    "residents-feedback-thanks-phone": "feedback-phone.jpg",
    "desk-statistics": "desk-statistics.jpg",
    "desk-report": "desk-report.jpg",
}


async def keep(page: Page, name: str) -> None:
    """Save the tour's picture of this screen, if the tour is being made and lists it."""
    folder = os.environ.get("MINQING_TOUR_DIR")
    if not folder or name not in TOUR:
        return
    target = Path(folder) / TOUR[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target), type="jpeg", quality=70)
