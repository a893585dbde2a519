"""Open311's reads and writes on intake's tables: keys, request extras, media, listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake.channels.open311.domain import RequestQuery, StoredRequest
from minqing.services.intake.channels.open311.tables import api_keys, media, requests
from minqing.services.intake.domain import Extras
from minqing.services.intake.store import SqlReports, matters, reports


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    source: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Media:
    media_id: str
    content_type: str
    content: bytes


class Open311Reports(SqlReports):
    """Intake's report store plus what an Open311 request adds, in the same transaction."""

    async def add_request(
        self, report_id: str, key_id: str, extras: Extras, media_id: str | None
    ) -> None:
        await self._session.execute(
            requests.insert().values(
                report_id=report_id,
                key_id=key_id,
                email=extras.email,
                device_id=extras.device_id,
                account_id=extras.account_id,
                address_id=extras.address_id,
                media_url=extras.media_url,
                media_id=media_id,
            )
        )

    async def add_media(
        self, media_id: str, report_id: str, content_type: str, content: bytes, at: datetime
    ) -> None:
        await self._session.execute(
            media.insert().values(
                media_id=media_id,
                report_id=report_id,
                content_type=content_type,
                size=len(content),
                content=content,
                created_at=at,
            )
        )


async def active_key(session: AsyncSession, key_hash: str) -> ApiKey | None:
    """The key with this hash, unless revoked."""
    row = (
        await session.execute(
            select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        )
    ).first()
    return None if row is None else _key(row._asdict())


async def ensure_key(session: AsyncSession, key: ApiKey, key_hash: str) -> None:
    """A key row made unless one of its name or hash exists (revoked or not: a revoked key
    stays revoked)."""
    row = {
        "key_id": key.key_id,
        "name": key.name,
        "key_hash": key_hash,
        "source": key.source,
        "created_at": key.created_at,
    }
    await session.execute(insert(api_keys).values(row).on_conflict_do_nothing())
    await session.commit()


async def all_keys(session: AsyncSession) -> list[ApiKey]:
    rows = (await session.execute(select(api_keys).order_by(api_keys.c.created_at))).all()
    return [_key(row._asdict()) for row in rows]


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(row["key_id"], row["name"], row["source"], row["created_at"], row["revoked_at"])


async def find_requests(session: AsyncSession, query: RequestQuery) -> list[StoredRequest]:
    """The reports a GET requests names, newest first, with their matters' status."""
    statement = _joined()
    if query.ids:
        statement = statement.where(reports.c.report_id.in_(query.ids))
    else:
        if query.categories:
            statement = statement.where(reports.c.category.in_(query.categories))
        if query.public_sources is not None:
            statement = statement.where(reports.c.source.in_(query.public_sources))
        if query.public_categories is not None:
            statement = statement.where(reports.c.category.in_(query.public_categories))
        if query.statuses:
            statement = statement.where(matters.c.status.in_(query.statuses))
        if query.start is not None:
            statement = statement.where(reports.c.received_at >= query.start)
        if query.end is not None:
            statement = statement.where(reports.c.received_at <= query.end)
    statement = statement.order_by(reports.c.received_at.desc(), reports.c.report_id.desc())
    rows = (await session.execute(statement.limit(query.limit))).all()
    return [StoredRequest(**row._asdict()) for row in rows]


def _joined() -> Select[Any]:
    return select(
        reports.c.report_id,
        reports.c.issue_id,
        reports.c.category,
        reports.c.description,
        reports.c.address,
        reports.c.lat,
        reports.c.lon,
        reports.c.received_at,
        matters.c.status,
        matters.c.status_notes,
        matters.c.unit,
        matters.c.deadline,
        matters.c.updated_at,
        requests.c.address_id,
        requests.c.media_url,
        requests.c.media_id,
    ).select_from(
        reports.join(matters, matters.c.issue_id == reports.c.issue_id).outerjoin(
            requests, requests.c.report_id == reports.c.report_id
        )
    )


async def find_media(session: AsyncSession, media_id: str) -> Media | None:
    row = (
        await session.execute(
            select(media.c.media_id, media.c.content_type, media.c.content).where(
                and_(media.c.media_id == media_id)
            )
        )
    ).first()
    return None if row is None else Media(row.media_id, row.content_type, bytes(row.content))
