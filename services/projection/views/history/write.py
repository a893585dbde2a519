"""The audit trail's consumer: each batch stored once by event id, sealed into the chain
(``seal.py``) in stream order, one batch at a time (a transaction-scoped advisory lock)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    Text,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.views.history import seal as audit
from minqing.services.projection.views.history.tables import events
from minqing.shared.messaging.consumer import Delivery, Outcome
from minqing.shared.persistence.bulk import column_names, executemany, insert_sql

_INSERT = insert_sql(events, "event_id", update=False)
_DATA = TypeAdapter(dict[str, Any])  # serialises ``data`` in Rust, like the envelope
_COLUMNS = column_names(events, "event_id")
CHAIN_LOCK = 0x4D51_4155  # "MQAU": one batch at a time extends the audit chain
_PRESENT = select(events.c.event_id).where(
    events.c.event_id == any_(bindparam("ids", type_=ARRAY(Text)))
)
_HEAD = select(events.c.log_seq, events.c.hash).order_by(events.c.log_seq.desc()).limit(1)
_ISSUE_HEADS = (
    select(events.c.issue_id, events.c.issue_hash)
    .ext(distinct_on(events.c.issue_id))
    .where(events.c.issue_id == any_(bindparam("ids", type_=ARRAY(Text))))
    .order_by(events.c.issue_id, events.c.log_seq.desc())
)


async def apply_batch(
    session: AsyncSession, deliveries: Sequence[Delivery]
) -> Mapping[str, Outcome]:
    """Store every event once, sealed into the chain, in one executemany; events of any
    type and version."""
    await session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK)))
    # Each event is sealed once: one already recorded (a replay into rebuilt tables, a
    # second replica) is left out, so the log never has a gap where its copy was refused.
    stored = set(await session.scalars(_PRESENT, {"ids": [d.envelope.id for d in deliveries]}))
    deliveries = [
        d
        for d in dict((d.envelope.id, d) for d in deliveries).values()
        if d.envelope.id not in stored
    ]
    if not deliveries:
        return {}
    head = (await session.execute(_HEAD)).first()
    ids = list({d.envelope.subject for d in deliveries})
    issue_heads = {
        r.issue_id: r.issue_hash for r in await session.execute(_ISSUE_HEADS, {"ids": ids})
    }
    entries = [_entry(d) for d in deliveries]
    sealed = audit.seal(entries, (head[0], head[1]) if head else (0, audit.GENESIS), issue_heads)
    rows = []
    for entry, seal in zip(entries, sealed, strict=True):
        values = {**entry, **asdict(seal)}
        values["data"] = _DATA.dump_json(entry["data"]).decode()
        rows.append(tuple(values[c] for c in _COLUMNS))
    await executemany(session, _INSERT, rows)
    return {}


def _entry(delivery: Delivery) -> dict[str, Any]:
    e = delivery.envelope
    return {
        "event_id": e.id,
        "stream_epoch": delivery.epoch,
        "stream_seq": delivery.position,
        "issue_id": e.subject,
        "type": e.type,
        "time": e.time,
        "actor": e.actor,
        "source": e.source,
        "dataversion": e.dataversion,
        "correlationid": e.correlationid,
        "causationid": e.causationid,
        "data": e.data,
    }
