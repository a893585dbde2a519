"""The audit trail says how many photos a step names (the photos are in intake's store)."""

from __future__ import annotations

from datetime import date

from minqing.services.projection.sentences import Names, describe
from minqing.shared.contract.events import (
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueReported,
    IssueResolved,
    PhotoRef,
)
from minqing.shared.contract.reference import load
from minqing.shared.service.settings import REFERENCE_DIR

NAMES = Names(load(REFERENCE_DIR))
ONE = (PhotoRef(photo_id="01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6", sha256="a" * 64),)
TWO = (*ONE, PhotoRef(photo_id="01KB1Y8ZQ4J7ZKQ1V2S3T4W5X7", sha256="b" * 64))


def test_a_step_with_photos_says_how_many_and_one_without_says_nothing() -> None:
    resolved = IssueResolved(
        unit="town_construction",
        summary="Lamps replaced",
        resolved_by="person:wang",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
    )
    plain = describe("minqing.issue.resolved", 1, resolved.model_dump(mode="json"), NAMES)
    with_two = resolved.model_copy(update={"photos": TWO})
    said = describe("minqing.issue.resolved", 1, with_two.model_dump(mode="json"), NAMES)
    assert "photo" not in plain.en and "照片" not in plain.zh
    assert "Lamps replaced (2 photos); look-back due 2026-12-08" in said.en
    assert "Lamps replaced（附照片 2 张）；" in said.zh

    reported = IssueReported(
        title="Lamps", description="d", category="bridges", village="sanqi", source="visit"
    )
    one = reported.model_copy(update={"photos": ONE}).model_dump(mode="json")
    assert describe("minqing.issue.reported", 1, one, NAMES).en.endswith(" (1 photo)")
    visit = {"visitor": "person:li", "notes": "All lit", "assignment_no": 1}
    window = {"lookback_due": date(2026, 12, 8), "within_window": True, "photos": ONE}
    for cls, short in ((IssueLookbackPassed, "passed"), (IssueLookbackFailed, "failed")):
        event = cls(**visit, **window).model_dump(mode="json")
        said = describe(f"minqing.issue.lookback_{short}", 1, event, NAMES)
        assert "All lit (1 photo)" in said.en and "All lit（附照片 1 张）" in said.zh
