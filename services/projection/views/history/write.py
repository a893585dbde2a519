"""The audit trail's consumer: each batch stored once by event id, sealed into the chain
(``seal.py``) in stream order, one batch at a time (a transaction-scoped advisory lock)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    Text,
    any_,
    bindparam,
    func,
    literal,
    null,
    select,
    union_all,
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
# What sealing a batch needs, read in one statement (one snapshot, one round trip) under
# the chain's lock: which of its events are recorded already ('stored'), the chain's head
# ('head': its log_seq and hash) and the head of each of its matters ('matter').
_IDS = bindparam("ids", type_=ARRAY(Text))
_ISSUES = bindparam("issues", type_=ARRAY(Text))
_BEFORE_SEALING = union_all(
    select(
        literal("stored").label("part"),
        events.c.event_id.label("key"),
        null().cast(BigInteger).label("log_seq"),
        null().cast(Text).label("hash"),
    ).where(events.c.event_id == any_(_IDS)),
    select(literal("head"), null().cast(Text), events.c.log_seq, events.c.hash)
    .order_by(events.c.log_seq.desc())
    .limit(1),
    select(literal("matter"), events.c.issue_id, null().cast(BigInteger), events.c.issue_hash)
    .ext(distinct_on(events.c.issue_id))
    .where(events.c.issue_id == any_(_ISSUES))
    .order_by(events.c.issue_id, events.c.log_seq.desc()),
)


async def apply_batch(
    session: AsyncSession, deliveries: Sequence[Delivery]
) -> Mapping[str, Outcome]:
    """Store every event once, sealed into the chain, in one executemany; events of any
    type and version."""
    await session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK)))
    params = {
        "ids": [d.envelope.id for d in deliveries],
        "issues": list({d.envelope.subject for d in deliveries}),
    }
    stored: set[str] = set()
    head: tuple[int, str] | None = None
    issue_heads: dict[str, str] = {}
    for row in await session.execute(_BEFORE_SEALING, params):
        if row.part == "stored":
            stored.add(row.key)
        elif row.part == "head":
            head = (row.log_seq, row.hash)
        else:
            issue_heads[row.key] = row.hash
    # Each event is sealed once: one already recorded (a replay into rebuilt tables, a
    # second replica) is left out, so the log never has a gap where its copy was refused.
    deliveries = [
        d
        for d in dict((d.envelope.id, d) for d in deliveries).values()
        if d.envelope.id not in stored
    ]
    if not deliveries:
        return {}
    entries = [_entry(d) for d in deliveries]
    sealed = audit.seal(entries, head or (0, audit.GENESIS), issue_heads)
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
