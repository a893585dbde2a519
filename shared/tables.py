"""Outbox, inbox and dead-letter tables, the same shape in every service's own schema."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, Table, Text, func


@dataclass(frozen=True)
class Plumbing:
    outbox: Table
    inbox: Table
    dead_letters: Table


def plumbing_tables(metadata: MetaData) -> Plumbing:
    """Declare the three tables on a service's metadata (its schema comes from the metadata)."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", Text, nullable=False, unique=True),
        Column("subject", Text, nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Column("stream_seq", BigInteger),
    )
    Index(
        "outbox_unpublished",
        outbox.c.id,
        postgresql_where=outbox.c.published_at.is_(None),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", Text, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", Text),
        Column("subject", Text, nullable=False),
        Column("stream_seq", BigInteger),
        Column("deliveries", Integer, nullable=False),
        Column("reason", Text, nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return Plumbing(outbox=outbox, inbox=inbox, dead_letters=dead_letters)
