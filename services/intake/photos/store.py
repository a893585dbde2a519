"""The photo store on intake's ``photos`` table, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake.photos.domain import Photo, Retention, Stage
from minqing.services.intake.photos.tables import photos
from minqing.services.intake.store import SqlReports, matters

# Photos pruned per statement (each a short transaction's worth of rows).
PRUNE_BATCH = 500

_DESCRIBED = [c for c in photos.c if c.name != "bytes"]


def _photo(row: Any) -> Photo:
    return Photo(
        photo_id=row.photo_id,
        sha256=row.sha256,
        content_type=row.content_type,
        size=row.size,
        uploaded_by=row.uploaded_by,
        uploaded_at=row.uploaded_at,
        issue_id=row.issue_id,
        stage=row.stage,
        attached_at=row.attached_at,
        pruned_at=row.pruned_at,
    )


class SqlPhotos:
    """The ``Photos`` store (``handlers.Photos``)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, photo: Photo, content: bytes) -> Photo:
        """Store a new photo; the same bytes from the same uploader, still kept, are the
        photo stored before (which is returned, not this one)."""
        kept = photos.c.pruned_at.is_(None)
        statement = (
            insert(photos)
            .values(
                photo_id=photo.photo_id,
                sha256=photo.sha256,
                content_type=photo.content_type,
                size=photo.size,
                bytes=content,
                uploaded_by=photo.uploaded_by,
                uploaded_at=photo.uploaded_at,
            )
            .on_conflict_do_nothing(index_elements=["uploaded_by", "sha256"], index_where=kept)
        )
        await self._session.execute(statement)
        query = select(*_DESCRIBED).where(
            photos.c.uploaded_by == photo.uploaded_by, photos.c.sha256 == photo.sha256, kept
        )
        return _photo((await self._session.execute(query)).one())

    async def get(self, photo_id: str) -> Photo | None:
        query = select(*_DESCRIBED).where(photos.c.photo_id == photo_id)
        row = (await self._session.execute(query)).one_or_none()
        return None if row is None else _photo(row)

    async def content(self, photo_id: str) -> bytes | None:
        query = select(photos.c.bytes).where(photos.c.photo_id == photo_id)
        found: bytes | None = await self._session.scalar(query)
        return found

    async def for_attaching(self, photo_ids: Sequence[str]) -> dict[str, Photo]:
        """The photos with these ids, locked until the transaction ends (the retention
        rule skips them meanwhile)."""
        query = (
            select(*_DESCRIBED)
            .where(photos.c.photo_id.in_(list(photo_ids)))
            .order_by(photos.c.photo_id)
            .with_for_update()
        )
        return {row.photo_id: _photo(row) for row in await self._session.execute(query)}

    async def attach(self, photo_id: str, issue_id: str, stage: Stage, at: datetime) -> None:
        await self._session.execute(
            update(photos)
            .where(photos.c.photo_id == photo_id)
            .values(issue_id=issue_id, stage=stage, attached_at=at)
        )

    async def of_issue(self, issue_id: str) -> list[Photo]:
        query = (
            select(*_DESCRIBED)
            .where(photos.c.issue_id == issue_id)
            .order_by(photos.c.attached_at, photos.c.photo_id)
        )
        return [_photo(row) for row in await self._session.execute(query)]

    async def place(self, issue_id: str) -> tuple[str | None, str] | None:
        """The matter's unit and village (None: no such matter)."""
        return await SqlReports(self._session).place(issue_id)

    async def matter_exists(self, issue_id: str) -> bool:
        query = select(matters.c.issue_id).where(matters.c.issue_id == issue_id)
        return (await self._session.scalar(query)) is not None

    async def prune(self, now: datetime, rule: Retention) -> tuple[int, int]:
        """Delete the bytes of up to ``PRUNE_BATCH`` photos the rule removes at ``now`` (the
        rows stay): how many were never attached, and how many were on a matter. Photos
        locked by a transaction attaching them are left for the next round."""
        kept_before, orphans_before = rule.cutoffs(now)
        due = and_(
            photos.c.pruned_at.is_(None),
            or_(
                and_(photos.c.issue_id.is_(None), photos.c.uploaded_at < orphans_before),
                and_(photos.c.issue_id.is_not(None), photos.c.uploaded_at < kept_before),
            ),
        )
        batch = (
            select(photos.c.photo_id)
            .where(due)
            .order_by(photos.c.uploaded_at)
            .limit(PRUNE_BATCH)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(photos)
            .where(photos.c.photo_id.in_(batch), due)
            .values(bytes=None, pruned_at=now)
            .returning(photos.c.issue_id)
        )
        attached = [issue_id for issue_id in (await self._session.scalars(statement))]
        on_matters = sum(1 for issue_id in attached if issue_id is not None)
        return len(attached) - on_matters, on_matters


class SqlReportsWithPhotos(SqlReports):
    """Reports, and the photos a report attaches in its transaction (``POST /reports``)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.photos = SqlPhotos(session)
