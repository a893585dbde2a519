"""The audit trail read back: a matter's events in stream order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.views.history.tables import events


async def trail(session: AsyncSession, issue_id: str) -> list[dict[str, Any]]:
    """Every event of the matter in stream order."""
    rows = await session.execute(
        select(
            events.c.stream_seq.label("position"),
            events.c.stream_epoch.label("epoch"),
            events.c.event_id.label("id"),
            events.c.type,
            events.c.time,
            events.c.actor,
            events.c.source,
            events.c.dataversion,
            events.c.correlationid,
            events.c.causationid,
            events.c.data,
            events.c.log_seq,
            events.c.hash,
        )
        .where(events.c.issue_id == issue_id)
        .order_by(events.c.stream_epoch, events.c.stream_seq)
    )
    return [row._asdict() for row in rows]
