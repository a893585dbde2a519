"""Followup's own schema: the case of each matter, and the plumbing."""

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Table, Text

from shared.tables import plumbing_tables

SCHEMA = "followup"
metadata = MetaData(schema=SCHEMA)

cases = Table(
    "cases",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("last_event_id", Text, nullable=False),
    Column("correlation_id", Text, nullable=False),
    Column("assignment_no", Integer, nullable=False),
    Column("unit", Text),
    Column("deadline", Date),
    Column("lookback_due", Date),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

plumbing = plumbing_tables(metadata)
