"""Intake's own schema: accepted reports, reporters' contact details, and the plumbing."""

from sqlalchemy import Column, DateTime, Float, MetaData, Table, Text, UniqueConstraint

from shared.tables import plumbing_tables

SCHEMA = "intake"
metadata = MetaData(schema=SCHEMA)

reports = Table(
    "reports",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("village", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("reporter_ref", Text),
    Column("address", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    # An Idempotency-Key is the caller's: scoped by the source channel until callers
    # authenticate.
    UniqueConstraint("source", "idempotency_key", name="reports_source_idempotency_key_key"),
)

# Personal data stays here; events carry only the opaque reporter_ref.
reporter_contacts = Table(
    "reporter_contacts",
    metadata,
    Column("reporter_ref", Text, primary_key=True),
    Column("name", Text),
    Column("phone", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

plumbing = plumbing_tables(metadata)
