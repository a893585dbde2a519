"""The audit trail's table: every canonical event, sealed, once by id."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from minqing.services.projection.schema import metadata

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
