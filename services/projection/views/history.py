"""The audit trail: every canonical event, known type or not, once by id.

Rows are keyed by event id and placed by (stream epoch, stream sequence): a re-created
stream restarts its sequences at 1 in a new epoch, so nothing collides or is dropped.
Each row is numbered in the log (``log_seq``) and sealed by hash, chained to the log's
previous entry and to its matter's previous entry (``services/projection/audit.py``); one
batch at a time extends the chain (a transaction-scoped advisory lock).

A row holds nothing the seal does not cover: the sealed fields of the event and the hashes
that chain it. Whatever a reader or a rebuild takes from this table (a rebuild makes the
events the stream no longer has from these columns, ``replay.py``) is what ``minqing audit
verify`` checks; the message as it was received stays in the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection import audit
from minqing.services.projection.schema import metadata
from minqing.shared.messaging.consumer import Delivery, Outcome
from minqing.shared.persistence.bulk import column_names, executemany, insert_sql

NAME = "history"
# Sealed in stream order: its consumer reads in order from its committed position (no
# redelivery can put a later event before an earlier one), as a rebuild reads the stream.
ORDERED = True

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
    Column("log_seq", BigInteger, nullable=False, unique=True),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("issue_prev_hash", Text, nullable=False),
    Column("issue_hash", Text, nullable=False),
)
Index("events_issue_position", events.c.issue_id, events.c.stream_epoch, events.c.stream_seq)
Index("events_issue_log", events.c.issue_id, events.c.log_seq)
# The events the statistics count (look-backs, feedback, funds) under a small index of their own.
LOOKBACK_PASSED = "minqing.issue.lookback_passed"
LOOKBACK_FAILED = "minqing.issue.lookback_failed"
FEEDBACK = "minqing.issue.feedback_recorded"
FUNDING = "minqing.issue.funding_recorded"
FIGURE_TYPES = (LOOKBACK_PASSED, LOOKBACK_FAILED, FEEDBACK, FUNDING)
Index(
    "events_figures",
    events.c.type,
    events.c.issue_id,
    postgresql_where=events.c.type.in_(FIGURE_TYPES),
)
TABLES = (events,)  # what this read model owns: a rebuild replaces exactly these

_INSERT = insert_sql(events, "event_id", update=False)
_DATA = TypeAdapter(dict[str, Any])  # serialises ``data`` in Rust, like the envelope
_COLUMNS = column_names(events, "event_id")
_CHAIN_LOCK = 0x4D51_4155  # "MQAU": one batch at a time extends the audit chain
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
    await session.execute(select(func.pg_advisory_xact_lock(_CHAIN_LOCK)))
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
