"""The photo store's use cases: upload, read one, list a matter's, attach the photos a
step names (a report here and then; a resolution, look-back or re-visit when intake reads
followup's event), and prune by the retention rule.

Ends with the routing table of the photos steps name (``PHOTO_HANDLERS``), which intake's
status consumer applies after its own (photos/wiring.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from minqing.services.intake.handlers import Accepted, Reports
from minqing.services.intake.photos.domain import (
    NoSuchPhoto,
    Photo,
    PhotoPruned,
    PhotosRefused,
    Retention,
    Stage,
    already_attached,
    checked_upload,
    may_see,
    refused,
    removed,
)
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import (
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueResolved,
    IssueRevisitRecorded,
    PhotoRef,
)
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.policy import Reach
from minqing.shared.messaging.dispatch import Handlers
from minqing.shared.persistence.uow import UnitOfWork, UowFactory

log = logging.getLogger("minqing.intake.photos")


class Photos(Protocol):
    """Photos, and where the matters they are on stand (for who sees them)."""

    async def add(self, photo: Photo, content: bytes) -> Photo:
        """Store a new photo, or give the one stored before with the same bytes from the
        same uploader (still kept)."""
        ...

    async def get(self, photo_id: str) -> Photo | None: ...

    async def content(self, photo_id: str) -> bytes | None: ...

    async def for_attaching(self, photo_ids: Sequence[str]) -> dict[str, Photo]: ...

    async def attach(self, photo_id: str, issue_id: str, stage: Stage, at: datetime) -> None: ...

    async def of_issue(self, issue_id: str) -> list[Photo]: ...

    async def place(self, issue_id: str) -> tuple[str | None, str] | None: ...

    async def prune(self, now: datetime, rule: Retention) -> tuple[int, int]: ...


class ReportsWithPhotos(Reports, Protocol):
    """A report's store with the photo store in the same transaction."""

    @property
    def photos(self) -> Photos: ...


@dataclass(frozen=True)
class Viewer:
    """Who asks for a photo: its principal id, whether it reaches the whole town, and
    whether it reaches a matter (its unit, its village)."""

    principal_id: str
    town: bool
    reach: Reach


@dataclass(frozen=True)
class Uploaded:
    photo: Photo
    created: bool  # False: the same bytes from the same uploader, stored before


async def upload_photo(
    units: UowFactory[Photos],
    declared_type: str | None,
    content: bytes,
    *,
    uploader: str,
    limit: int,
) -> Uploaded:
    """Keep a photo (checked: size, type, bytes); the same bytes again are the same photo."""
    content_type = checked_upload(declared_type, content, limit)
    async with units() as uow:
        new = Photo(
            photo_id=new_id(),
            sha256=hashlib.sha256(content).hexdigest(),
            content_type=content_type,
            size=len(content),
            uploaded_by=uploader,
            uploaded_at=uow.now,
        )
        stored = await uow.store.add(new, content)
        await uow.commit()
    return Uploaded(stored, created=stored.photo_id == new.photo_id)


async def _visible(store: Photos, photo: Photo | None, viewer: Viewer) -> bool:
    if photo is None:
        return False
    reaches = False
    if photo.issue_id is not None and not viewer.town and photo.uploaded_by != viewer.principal_id:
        place = await store.place(photo.issue_id)
        reaches = place is not None and viewer.reach(*place)
    return may_see(photo, viewer.principal_id, town=viewer.town, reaches_matter=reaches)


async def open_photo(
    units: UowFactory[Photos], photo_id: str, viewer: Viewer
) -> tuple[Photo, bytes]:
    """A photo and its bytes, for a viewer who may see it; one it may not is no photo at
    all, one the retention rule removed is gone (saying when)."""
    async with units() as uow:
        photo = await uow.store.get(photo_id)
        if not await _visible(uow.store, photo, viewer):
            raise NoSuchPhoto(f"no photo {photo_id}")
        assert photo is not None
        if photo.pruned_at is not None:
            raise PhotoPruned(removed(photo))
        content = await uow.store.content(photo_id)
    if content is None:  # pruned between the two reads
        raise NoSuchPhoto(f"no photo {photo_id}")
    return photo, content


async def photos_of_issue(units: UowFactory[Photos], issue_id: str, viewer: Viewer) -> list[Photo]:
    """The photos on a matter the viewer reaches; a matter it does not reach shows only the
    viewer's own photos on it, and with none of those is no matter at all."""
    async with units() as uow:
        place = await uow.store.place(issue_id)
        if place is None:
            raise NoSuchPhoto(f"no matter {issue_id}")
        found = await uow.store.of_issue(issue_id)
    if viewer.town or viewer.reach(*place):
        return found
    own = [p for p in found if p.uploaded_by == viewer.principal_id]
    if not own:
        raise NoSuchPhoto(f"no matter {issue_id}")
    return own


async def attach_to_report(
    store: Photos, refs: Sequence[PhotoRef], *, actor: str, issue_id: str, at: datetime
) -> None:
    """Attach a report's photos in its transaction: each must be the reporter's own,
    unattached and as named, else the report is refused (nothing recorded)."""
    found = await store.for_attaching([ref.photo_id for ref in refs])
    problems = refused([found.get(ref.photo_id) for ref in refs], refs, actor)
    if problems:
        raise PhotosRefused("; ".join(problems))
    for ref in refs:
        await store.attach(ref.photo_id, issue_id, "reported", at)


def report_photos(refs: Sequence[PhotoRef], actor: str) -> _ReportPhotos:
    """What ``report_issue`` keeps beside a new report: its photos, attached."""
    return _ReportPhotos(tuple(refs), actor)


@dataclass(frozen=True)
class _ReportPhotos:
    refs: tuple[PhotoRef, ...]
    actor: str

    async def __call__(self, uow: UnitOfWork[ReportsWithPhotos], accepted: Accepted) -> None:
        await attach_to_report(
            uow.store.photos, self.refs, actor=self.actor, issue_id=accepted.issue_id, at=uow.now
        )


async def attach_named(
    store: Photos, refs: Sequence[PhotoRef], cause: Envelope, stage: Stage
) -> int:
    """Attach the photos a step of followup's names, those its actor uploaded and whose
    SHA-256 matches; any other is left as it is, with a warning (ids only). How many were
    attached."""
    if not refs:
        return 0
    found = await store.for_attaching([ref.photo_id for ref in refs])
    attached = 0
    for ref in refs:
        photo = found.get(ref.photo_id)
        if already_attached(photo, cause.subject, stage):
            continue  # the event read again
        if problems := refused([photo], [ref], cause.actor):
            log.warning(
                "photos: %s names a photo not attached to matter %s: %s",
                cause.type,
                cause.subject,
                problems[0].removeprefix("photos[0]: "),
            )
            continue
        await store.attach(ref.photo_id, cause.subject, stage, cause.time)
        attached += 1
    return attached


async def on_resolved(
    event: IssueResolved, cause: Envelope, uow: UnitOfWork[Photos], deps: None
) -> None:
    await attach_named(uow.store, event.photos, cause, "resolution")


async def on_lookback(
    event: IssueLookbackPassed | IssueLookbackFailed,
    cause: Envelope,
    uow: UnitOfWork[Photos],
    deps: None,
) -> None:
    await attach_named(uow.store, event.photos, cause, "lookback")


async def on_revisit(
    event: IssueRevisitRecorded, cause: Envelope, uow: UnitOfWork[Photos], deps: None
) -> None:
    await attach_named(uow.store, event.photos, cause, "revisit")


@dataclass(frozen=True)
class Pruned:
    orphans: int  # never attached to a matter
    expired: int  # on a matter, past the retention period

    @property
    def total(self) -> int:
        return self.orphans + self.expired


async def prune_photos(units: UowFactory[Photos], rule: Retention) -> Pruned:
    """Delete the bytes of every photo the retention rule removes now (the rows stay, with
    their ids and SHA-256), in short transactions."""
    orphans = expired = 0
    while True:
        async with units() as uow:
            batch = await uow.store.prune(uow.now, rule)
            await uow.commit()
        orphans, expired = orphans + batch[0], expired + batch[1]
        if sum(batch) == 0:
            return Pruned(orphans, expired)


PHOTO_HANDLERS: Handlers = {
    IssueResolved: on_resolved,
    IssueLookbackPassed: on_lookback,
    IssueLookbackFailed: on_lookback,
    IssueRevisitRecorded: on_revisit,
}
