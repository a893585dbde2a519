"""The plumbing tables, the same shape in every service's own schema.

outbox: events waiting to be published; inbox: event ids each consumer has applied;
dead_letters: messages a consumer gave up on (or that wait for a newer consumer), raw bytes
kept; positions: the last stream sequence each durable consumer committed, per stream
epoch; stream_epochs: every incarnation of a stream seen (a re-created stream restarts its
sequences at 1, so a position is only meaningful with its epoch).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class Plumbing:
    outbox: Table
    inbox: Table
    dead_letters: Table
    positions: Table
    stream_epochs: Table


def _now() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def plumbing_tables(metadata: MetaData, *, external: bool = False) -> Plumbing:
    """Declare the tables on a service's metadata (its schema comes from the metadata).

    ``external``: the service also talks to systems outside the canonical stream (intake:
    outcomes, a dead-letter stream), so an outbox row may name its own stream, headers and
    raw body, and a dead letter keeps a machine-readable reason code.
    """
    routing = (
        [
            Column("stream", Text),  # NULL: the canonical stream
            Column("headers", JSONB),  # NULL: the canonical CloudEvents content type
            Column("body", LargeBinary),  # the bytes to publish, when not ``payload``
        ]
        if external
        else []
    )
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", Text, nullable=False, unique=True),
        Column("subject", Text, nullable=False),
        Column("payload", Text, nullable=False),
        _now(),
        Column("published_at", DateTime(timezone=True)),
        Column("stream_seq", BigInteger),
        Column("failed_reason", Text),
        *routing,
    )
    Index(
        "outbox_unpublished",
        outbox.c.id,
        postgresql_where=outbox.c.published_at.is_(None) & outbox.c.failed_reason.is_(None),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", Text, primary_key=True),
        Column("event_id", Text, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    Index("inbox_processed_at", inbox.c.processed_at)
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("consumer", Text, nullable=False),
        Column("status", Text, nullable=False),  # "dead" or "waiting" (for a newer consumer)
        Column("event_id", Text),
        Column("stream", Text, nullable=False),
        Column("stream_epoch", Integer, nullable=False),
        Column("stream_seq", BigInteger, nullable=False),
        Column("subject", Text, nullable=False),
        Column("deliveries", Integer, nullable=False),
        Column("reason", Text, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("raw", LargeBinary, nullable=False),
        _now(),
        *([Column("reason_code", Text)] if external else []),
        UniqueConstraint("consumer", "stream_epoch", "stream_seq", name="dead_letters_position"),
    )
    positions = Table(
        "positions",
        metadata,
        Column("consumer", Text, primary_key=True),
        Column("stream_epoch", Integer, nullable=False),
        Column("stream_seq", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    stream_epochs = Table(
        "stream_epochs",
        metadata,
        Column("epoch", Integer, primary_key=True, autoincrement=True),
        Column("stream", Text, nullable=False),
        Column("stream_created", DateTime(timezone=True), nullable=False),
        _now(),
        UniqueConstraint("stream", "stream_created", name="stream_epochs_incarnation"),
    )
    return Plumbing(outbox, inbox, dead_letters, positions, stream_epochs)
