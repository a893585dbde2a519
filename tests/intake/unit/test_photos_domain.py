"""The photo store's rules, without I/O: what may be stored, who sees a photo, which a
step may attach, and when the retention rule removes one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from minqing.services.intake.photos.domain import (
    NotAPhoto,
    Photo,
    PhotoTooLarge,
    PhotoTypeNotAccepted,
    Retention,
    already_attached,
    checked_upload,
    may_see,
    refused,
    why_not_attached,
)
from minqing.shared.contract.events import PhotoRef

AT = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
HEIC = b"\x00\x00\x00\x18ftypheic" + bytes(16)
PHOTO = Photo("01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6", "a" * 64, "image/png", 40, "person:li", AT)


def test_a_photo_is_stored_as_the_declared_type_of_its_bytes() -> None:
    assert checked_upload("image/png", PNG, 1024) == "image/png"
    assert checked_upload("IMAGE/HEIC; x=1", HEIC, 1024) == "image/heic"
    with pytest.raises(PhotoTooLarge, match="larger than 16 bytes"):
        checked_upload("image/png", PNG, 16)
    for declared in ("image/svg+xml", "image/gif", "application/octet-stream", None):
        with pytest.raises(PhotoTypeNotAccepted):
            checked_upload(declared, PNG, 1024)
    with pytest.raises(NotAPhoto, match="declared image/jpeg, but the bytes are image/png"):
        checked_upload("image/jpeg", PNG, 1024)
    with pytest.raises(NotAPhoto, match="empty"):
        checked_upload("image/png", b"", 1024)


def test_who_sees_a_photo() -> None:
    on_matter = Photo(**{**PHOTO.__dict__, "issue_id": "01KB1Y8ZQ4J7ZKQ1V2S3T4W5X9"})
    assert may_see(PHOTO, "person:li", town=False, reaches_matter=False)  # its uploader
    assert may_see(PHOTO, "person:wang", town=True, reaches_matter=False)  # town-wide
    assert not may_see(PHOTO, "person:wang", town=False, reaches_matter=True)  # on no matter
    assert may_see(on_matter, "person:wang", town=False, reaches_matter=True)  # its unit
    assert not may_see(on_matter, "person:wang", town=False, reaches_matter=False)


def test_a_step_attaches_only_its_actors_own_free_photo_as_named() -> None:
    ref = PHOTO.ref
    assert why_not_attached(PHOTO, ref, "person:li") is None
    assert "someone else" in (why_not_attached(PHOTO, ref, "person:wang") or "")
    other = PhotoRef(photo_id=PHOTO.photo_id, sha256="b" * 64)
    assert "another SHA-256" in (why_not_attached(PHOTO, other, "person:li") or "")
    assert "does not exist" in (why_not_attached(None, ref, "person:li") or "")
    pruned = Photo(**{**PHOTO.__dict__, "pruned_at": AT})
    assert "retention rule" in (why_not_attached(pruned, ref, "person:li") or "")
    taken = Photo(**{**PHOTO.__dict__, "issue_id": "X", "stage": "resolution"})
    assert "already on a matter" in (why_not_attached(taken, ref, "person:li") or "")
    assert already_attached(taken, "X", "resolution") and not already_attached(
        taken, "X", "revisit"
    )
    assert refused([PHOTO, None], [ref, ref], "person:li") == [
        f"photos[1]: photo {PHOTO.photo_id} does not exist"
    ]


def test_the_retention_rule() -> None:
    rule = Retention(kept=timedelta(days=1095), orphans=timedelta(hours=24))
    attached = Photo(**{**PHOTO.__dict__, "issue_id": "X", "stage": "reported"})
    assert not rule.due(PHOTO, AT + timedelta(hours=24))
    assert rule.due(PHOTO, AT + timedelta(hours=24, seconds=1))
    assert not rule.due(attached, AT + timedelta(days=1095))
    assert rule.due(attached, AT + timedelta(days=1095, seconds=1))
    assert not rule.due(Photo(**{**PHOTO.__dict__, "pruned_at": AT}), AT + timedelta(days=9999))
