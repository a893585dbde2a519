"""The audit trail read back: a matter's events in stream order, and where the matter is
now as its trail alone tells (for the reach of a caller when the list is not kept here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.views.history.tables import events
from minqing.shared.contract.envelope import NewerVersion, UnreadableEvent, read
from minqing.shared.contract.events import IssueAssigned, IssueReported


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


def whereabouts(trail: Sequence[dict[str, Any]]) -> tuple[str | None, str | None]:
    """The matter's unit now (its latest assignment's) and its village (its report's, else
    its first assignment's), from its trail (``trail``, in stream order) as the list folds
    them; an event this code cannot read changes neither."""
    unit: str | None = None
    village: str | None = None
    for e in trail:
        try:
            event = read(e["type"], e["dataversion"], e["data"])
        except (UnreadableEvent, NewerVersion):
            continue
        if isinstance(event, IssueReported):
            village = event.village
        elif isinstance(event, IssueAssigned):
            unit = event.unit
            village = village or event.village
    return unit, village
