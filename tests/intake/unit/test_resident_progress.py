"""Where a resident's matter stands, in words, from the row the follow page reads. The
matter's status and the residents' answer are kept by two consumers; the page follows the
answer where there is one, so it never says "closed" before it can say what was found."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from minqing.services.intake.residents.pages import progress
from minqing.shared.contract.reference import load
from minqing.shared.service.settings import Settings

REF = load(Settings().reference_dir)
ZONE = ZoneInfo("Asia/Shanghai")


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "report_id": "RPT1",
        "issue_id": "RPT1",
        "category": "street_lights",
        "village": "sanqi",
        "received_at": datetime(2026, 12, 1, 17, 30, tzinfo=UTC),
        "status": "open",
        "unit": None,
        "deadline": None,
        "stage": None,
        "summary": None,
        "lookback_due": None,
        "notes": None,
    }
    return base | changes


ASSIGNED = {"unit": "town_construction", "deadline": date(2026, 12, 18)}
RESOLVED = {"stage": "resolved", "summary": "换了灯", "lookback_due": date(2026, 12, 10)}
CLOSED = {"status": "closed", "stage": "closed", "notes": "亮了"}


@pytest.mark.parametrize(
    ("changes", "stage", "notes"),
    [
        ({}, "received", None),
        (ASSIGNED, "assigned", None),
        (ASSIGNED | RESOLVED, "resolved", None),
        # the status consumer has seen the passed look-back, the answer's has not yet
        (ASSIGNED | RESOLVED | {"status": "closed"}, "resolved", None),
        (ASSIGNED | RESOLVED | CLOSED, "closed", "亮了"),
        (ASSIGNED | RESOLVED | {"stage": "reopened", "notes": "还有一盏"}, "reopened", "还有一盏"),
        # a matter closed before answers were kept has only its status
        (ASSIGNED | {"status": "closed"}, "closed", None),
    ],
)
def test_the_answer_leads_and_the_status_fills_in(
    changes: dict[str, Any], stage: str, notes: str | None
) -> None:
    seen = progress(row(**changes), REF, ZONE)
    assert (seen.stage, seen.notes) == (stage, notes)
    assert seen.received == date(2026, 12, 2)  # the day in the town, not in UTC
