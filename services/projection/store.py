"""Projection's own schema: every canonical event as received, and the issues read model."""

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.tables import plumbing_tables

SCHEMA = "projection"
metadata = MetaData(schema=SCHEMA)

# The audit trail: one row per event id, at its position in the stream.
events = Table(
    "events",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", Text, nullable=False, unique=True),
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
Index("events_issue_position", events.c.issue_id, events.c.position)

issues = Table(
    "issues",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("status", Text),
    Column("title", Text),
    Column("description", Text),
    Column("category", Text),
    Column("village", Text),
    Column("source", Text),
    Column("reporter_ref", Text),
    Column("address", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("unit", Text),
    Column("responsible_person_id", Text),
    Column("responsible_person_name", Text),
    Column("deadline", Date),
    Column("assignment_no", Integer, nullable=False),
    Column("lookback_due", Date),
    Column("reported_at", DateTime(timezone=True)),
    Column("assigned_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_event_at", DateTime(timezone=True)),
    Column("last_position", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False),
)
Index("issues_status", issues.c.status)
Index("issues_village", issues.c.village)
Index("issues_unit", issues.c.unit)
Index("issues_category", issues.c.category)

plumbing = plumbing_tables(metadata)
