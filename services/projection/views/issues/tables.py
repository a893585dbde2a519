"""The list's tables: the matters now, their earlier states, the events folded into them."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from minqing.services.projection.schema import metadata
from minqing.services.projection.views.issues.fold import (
    IssueView,
)

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
    Column("reporter_phone_masked", Text),
    Column("external_ref", Text),
    Column("split_from", Text),
    Column("scale", Text),
    Column("duplicate_count", Integer, nullable=False),
    Column("address", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("unit", Text),
    Column("responsible_person_id", Text),
    Column("responsible_person_name", Text),
    Column("deadline", Date),
    Column("deadline_calendar", Text),
    Column("deadline_provisional", Boolean, nullable=False),
    Column("deadline_note", Text),
    Column("assignment_no", Integer, nullable=False),
    Column("lookback_due", Date),
    Column("lookback_due_provisional", Boolean, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("escalated_to", Text),
    Column("reported_at", DateTime(timezone=True)),
    Column("assigned_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_event_at", DateTime(timezone=True)),
    Column("last_epoch", Integer, nullable=False),
    Column("last_position", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False),
    # Free text (services/projection/search.py): the normalised text and its character pairs.
    Column("search_text", Text, nullable=False),
    Column("search_grams", ARRAY(Text), nullable=False),
)
Index("issues_status", issues.c.status)
Index("issues_village", issues.c.village)
Index("issues_unit", issues.c.unit)
Index("issues_category", issues.c.category)
Index("issues_search", issues.c.search_grams, postgresql_using="gin")
DERIVED = ["search_text", "search_grams"]

# Every earlier state of each matter (all the list's columns but the search ones), in force
# from its ``last_event_at`` until ``valid_to``: the list and statistics "as of" a past time.
issue_versions = Table(
    "issue_versions",
    metadata,
    *(
        Column(
            c.name, c.type, nullable=c.nullable, primary_key=c.name in ("issue_id", "event_count")
        )
        for c in issues.c
        if c.name not in DERIVED
    ),
    Column("valid_to", DateTime(timezone=True), nullable=False),
)
Index("issue_versions_valid", issue_versions.c.valid_to)
# Every event this view was given, once by id: what a late event's re-fold and a matter
# "as of" a past time fold again (any type: an unknown one still counts in ``event_count``).
issue_events = Table(
    "issue_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("issue_id", Text, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("dataversion", Integer, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("data", JSONB, nullable=False),
)
Index("issue_events_issue", issue_events.c.issue_id, issue_events.c.epoch, issue_events.c.seq)
# What this read model owns: a rebuild replaces exactly these.
TABLES = (issues, issue_versions, issue_events)

FIELDS = [f.name for f in fields(IssueView)]  # the view's fields: the columns read back
assert {c.name for c in issues.c} == {*FIELDS, *DERIVED}, (
    "the issues table and IssueView must match"
)
