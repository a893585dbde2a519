"""Projection's use case: record a batch of events and refresh the matters they touch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.projection.domain import Recorded, fold
from services.projection.store import events, issues
from shared.consumer import Delivery


async def record_batch(session: AsyncSession, deliveries: Sequence[Delivery]) -> Mapping[str, str]:
    """Store every event once (by id), then re-fold each touched matter from its history.

    Re-folding from the stored history makes the view independent of delivery order, so a
    redelivered or late event lands in its place in the stream order.
    """
    await session.execute(
        insert(events).values([_row(d) for d in deliveries]).on_conflict_do_nothing()
    )
    touched = {d.envelope.subject for d in deliveries}
    history: dict[str, list[Recorded]] = defaultdict(list)
    rows = await session.execute(
        select(
            events.c.issue_id,
            events.c.position,
            events.c.type,
            events.c.dataversion,
            events.c.time,
            events.c.data,
        )
        .where(events.c.issue_id.in_(touched))
        .order_by(events.c.position)
    )
    for row in rows:
        history[row.issue_id].append(
            Recorded(row.position, row.type, row.dataversion, row.time, row.data)
        )
    views = [asdict(fold(issue_id, records)) for issue_id, records in history.items()]
    stmt = insert(issues).values(views)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[issues.c.issue_id], set_=stmt.excluded)
    )
    return {}


def _row(delivery: Delivery) -> dict[str, Any]:
    e = delivery.envelope
    return {
        "position": delivery.position,
        "event_id": e.id,
        "issue_id": e.subject,
        "type": e.type,
        "time": e.time,
        "actor": e.actor,
        "source": e.source,
        "dataversion": e.dataversion,
        "correlationid": e.correlationid,
        "causationid": e.causationid,
        "data": e.data,
        "envelope": e.model_dump(mode="json", exclude_none=True),
    }
