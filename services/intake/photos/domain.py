"""Staff's photos: what may be stored, who sees one, which an event may attach, and when
the retention rule removes one. Pure: no I/O, time comes in as an argument.

A photo is uploaded first (``POST /api/v1/photos``), then named by id and SHA-256 in the
step it documents: a report (intake attaches it in the report's transaction), a
resolution, a look-back or a re-visit (followup records the step; intake attaches the
photo when it reads the event). Its bytes never travel in an event: the event names the
photo, so the audit trail's hash chain covers the SHA-256 of what was seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from minqing.shared.contract.events import PhotoRef
from minqing.shared.domain.photos import photo_mismatch

Stage = Literal["reported", "resolution", "lookback", "revisit"]

# What a phone's camera writes and a browser shows; never SVG (it can carry script).
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic")


class PhotoTooLarge(Exception):
    """The photo is larger than ``photo_max_bytes`` (413)."""


class PhotoTypeNotAccepted(Exception):
    """The declared type is not one of the photo types (415)."""


class NotAPhoto(Exception):
    """The bytes are not of the declared type, or there are none (422)."""


class NoSuchPhoto(Exception):
    """No photo with that id that the caller may see (404, as if it did not exist)."""


class PhotoPruned(Exception):
    """The retention rule removed the photo's bytes (410)."""


class PhotosRefused(Exception):
    """A step names a photo it may not attach: unknown, not the caller's, already on a
    matter, another SHA-256, or pruned (422)."""


@dataclass(frozen=True)
class Photo:
    """One photo as the store keeps it, without its bytes."""

    photo_id: str
    sha256: str
    content_type: str
    size: int
    uploaded_by: str  # the uploader's principal id
    uploaded_at: datetime
    issue_id: str | None = None
    stage: Stage | None = None
    attached_at: datetime | None = None
    pruned_at: datetime | None = None

    @property
    def ref(self) -> PhotoRef:
        return PhotoRef(photo_id=self.photo_id, sha256=self.sha256)


def checked_upload(declared: str | None, content: bytes, limit: int) -> str:
    """The type a photo is stored and served as: the declared one, once the bytes are
    within ``limit`` and of that type."""
    if len(content) > limit:
        raise PhotoTooLarge(f"the photo is larger than {limit} bytes, the limit")
    content_type = (declared or "").split(";")[0].strip().lower()
    if content_type not in PHOTO_TYPES:
        shown = content_type[:50] or "no type"
        raise PhotoTypeNotAccepted(
            f"a photo of type {shown!r} is not accepted; use one of {', '.join(PHOTO_TYPES)}"
        )
    if not content:
        raise NotAPhoto("the photo is empty")
    if problem := photo_mismatch(content_type, content, PHOTO_TYPES):
        raise NotAPhoto(f"photo: {problem}")
    return content_type


def may_see(photo: Photo, viewer: str, *, town: bool, reaches_matter: bool) -> bool:
    """Its uploader sees a photo; so do town-wide roles, and whoever reaches the matter it
    is on (the assigned unit's staff)."""
    return photo.uploaded_by == viewer or town or (photo.issue_id is not None and reaches_matter)


def removed(photo: Photo) -> str:
    """The sentence a pruned photo answers with."""
    assert photo.pruned_at is not None
    return (
        f"photo {photo.photo_id} was removed by the retention rule on "
        f"{photo.pruned_at:%Y-%m-%d %H:%M} UTC; its SHA-256 was {photo.sha256}"
    )


def why_not_attached(photo: Photo | None, ref: PhotoRef, actor: str) -> str | None:
    """Why a step by ``actor`` may not attach the photo ``ref`` names; None: it may."""
    if photo is None:
        return f"photo {ref.photo_id} does not exist"
    if photo.uploaded_by != actor:
        return f"photo {ref.photo_id} was uploaded by someone else"
    if photo.sha256 != ref.sha256:
        return f"photo {ref.photo_id} has another SHA-256 than the one given"
    if photo.pruned_at is not None:
        return f"photo {ref.photo_id} was removed by the retention rule"
    if photo.issue_id is not None:
        return f"photo {ref.photo_id} is already on a matter"
    return None


def refused(found: Sequence[Photo | None], refs: Sequence[PhotoRef], actor: str) -> list[str]:
    """Why each photo named by ``refs`` (found as ``found``, in order) may not be attached;
    empty: all may."""
    problems = [why_not_attached(photo, ref, actor) for photo, ref in zip(found, refs, strict=True)]
    return [f"photos[{i}]: {p}" for i, p in enumerate(problems) if p is not None]


def already_attached(photo: Photo | None, issue_id: str, stage: Stage) -> bool:
    """The photo is on this matter at this stage (an event read again)."""
    return photo is not None and photo.issue_id == issue_id and photo.stage == stage


@dataclass(frozen=True)
class Retention:
    """How long photos are kept: on a matter ``kept`` after the upload, never attached
    ``orphans`` after the upload."""

    kept: timedelta
    orphans: timedelta

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime]:
        """Uploaded before the first: pruned if on a matter; before the second: if not."""
        return now - self.kept, now - self.orphans

    def due(self, photo: Photo, now: datetime) -> bool:
        """Whether the rule removes this photo's bytes at ``now``."""
        if photo.pruned_at is not None:
            return False
        kept, orphans = self.cutoffs(now)
        return photo.uploaded_at < (orphans if photo.issue_id is None else kept)
