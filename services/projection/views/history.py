"""The audit trail: every canonical event as received, known type or not, once by id.

Rows are keyed by event id and placed by (stream epoch, stream sequence): a re-created
stream restarts its sequences at 1 in a new epoch, so nothing collides or is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    Table,
    Text,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.projection.domain import Recorded
from services.projection.schema import metadata
from shared.bulk import column_names, executemany, insert_sql
from shared.consumer import Delivery, Outcome

NAME = "history"

events = Table(
    "events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("stream_epoch", Integer, nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    Column("issue_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("dataversion", Integer, nullable=False),
    Column("correlationid", Text, nullable=False),
    Column("causationid", Text),
    Column("data", JSONB, nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("events_issue_position", events.c.issue_id, events.c.stream_epoch, events.c.stream_seq)

_INSERT = insert_sql(events, "event_id", update=False)
_DATA = TypeAdapter(dict[str, Any])  # serialises ``data`` in Rust, like the envelope
assert column_names(events, "event_id")[-2:] == ["data", "envelope"]


async def apply_batch(
    session: AsyncSession, deliveries: Sequence[Delivery]
) -> Mapping[str, Outcome]:
    """Store every event once, in one executemany; events of any type and version."""
    await executemany(session, _INSERT, [_row(d) for d in deliveries])
    return {}


def _row(delivery: Delivery) -> tuple[Any, ...]:
    e = delivery.envelope
    return (
        e.id,
        delivery.epoch,
        delivery.position,
        e.subject,
        e.type,
        e.time,
        e.actor,
        e.source,
        e.dataversion,
        e.correlationid,
        e.causationid,
        _DATA.dump_json(e.data).decode(),
        (delivery.raw or e.to_json()).decode(),  # the envelope exactly as received
    )


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
        )
        .where(events.c.issue_id == issue_id)
        .order_by(events.c.stream_epoch, events.c.stream_seq)
    )
    return [row._asdict() for row in rows]


async def recorded(session: AsyncSession, issue_ids: Sequence[str]) -> dict[str, list[Recorded]]:
    """The stored events of some matters, for a re-fold."""
    rows = await session.execute(
        select(
            events.c.issue_id,
            events.c.event_id,
            events.c.stream_epoch,
            events.c.stream_seq,
            events.c.type,
            events.c.dataversion,
            events.c.time,
            events.c.data,
        ).where(events.c.issue_id == any_(bindparam("ids", type_=ARRAY(Text)))),
        {"ids": list(issue_ids)},
    )
    found: dict[str, list[Recorded]] = {}
    for r in rows:
        found.setdefault(r.issue_id, []).append(
            Recorded(
                r.stream_seq, r.type, r.dataversion, r.time, r.data, r.stream_epoch, r.event_id
            )
        )
    return found
