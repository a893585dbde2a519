"""Residents' tables in intake's schema: supervisors (personal data, like reporters'
contacts), their records, replies waiting or sent, and feedback."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from minqing.services.intake.schema import metadata

# Name and phone stay here; events carry ``supervisor_ref`` and a masked phone. Both NULL
# once erased (``issue.supervisor_erased``).
supervisors = Table(
    "supervisors",
    metadata,
    Column("supervisor_ref", Text, primary_key=True),
    Column("issue_id", Text, nullable=False),
    Column("name", Text),
    Column("phone", Text),
    Column("phone_masked", Text),
    Column("invited_by", Text, nullable=False),
    Column("invited_at", DateTime(timezone=True), nullable=False),
)
Index("supervisors_issue_id", supervisors.c.issue_id)

supervisions = Table(
    "supervisions",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("issue_id", Text, nullable=False),
    Column("supervisor_ref", Text, ForeignKey(supervisors.c.supervisor_ref), nullable=False),
    Column("kind", Text, nullable=False),  # check | sign_off
    Column("satisfied", Boolean, nullable=False),
    Column("notes", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("supervisions_issue_id", supervisions.c.issue_id)

# Whether a resolution stands (a failed look-back undoes it): a sign-off needs one.
resolutions = Table(
    "resolutions",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("resolved", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# What residents are told of a matter on the public pages: the stage it reached, the unit's
# summary of what it did, the look-back visit's notes. Written by the ``intake-replies``
# consumer from the events it already answers (resolved, look-back passed or failed).
answers = Table(
    "answers",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("stage", Text, nullable=False),  # resolved | closed | reopened
    Column("summary", Text, nullable=False),
    Column("lookback_due", Date),
    Column("notes", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per reporter per event answered: queued with the event, sent by the worker. The
# token is kept in clear only until the reply is sent (it is in the message); then its hash.
replies = Table(
    "replies",
    metadata,
    Column("reply_id", Text, primary_key=True),
    Column("issue_id", Text, nullable=False),
    Column("reporter_ref", Text, nullable=False),
    Column("stage", Text, nullable=False),  # resolved | closed
    Column("text", Text, nullable=False),
    Column("token", Text),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("cause_event_id", Text, nullable=False),
    Column("correlation_id", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | sent | dropped (reporter erased)
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("held_until", DateTime(timezone=True)),
    Column("channel", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("cause_event_id", "reporter_ref", name="replies_cause_reporter_key"),
)
Index("replies_issue_id", replies.c.issue_id)
Index(
    "replies_due",
    replies.c.next_attempt_at,
    postgresql_where=text("status = 'pending'"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("reply_id", Text, ForeignKey(replies.c.reply_id), primary_key=True),
    Column("issue_id", Text, nullable=False),
    Column("reporter_ref", Text, nullable=False),
    Column("score", Integer, nullable=False),
    Column("comment", Text, nullable=False),
    Column("revisit", Boolean, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("feedback_issue_id", feedback.c.issue_id)
Index("feedback_revisits", feedback.c.recorded_at, postgresql_where=text("revisit"))
