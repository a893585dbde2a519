"""Assignment's own schema: the current assignment of each matter, and the plumbing."""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Table, Text

from shared.tables import plumbing_tables

SCHEMA = "assignment"
metadata = MetaData(schema=SCHEMA)

assignments = Table(
    "assignments",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("category", Text, nullable=False),
    Column("village", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("person_id", Text, nullable=False),
    Column("person_name", Text, nullable=False),
    Column("deadline", Date, nullable=False),
    Column("assignment_no", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

plumbing = plumbing_tables(metadata)
