"""Residents: supervisors of a matter and their records, answers to reporters (queued with
the event they answer, sent by a worker), feedback, and whether a resolution stands.

Revision ID: intake_0008
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0008"
down_revision = "intake_0007"
branch_labels = None
depends_on = None
SCHEMA = "intake"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "supervisors",
        sa.Column("supervisor_ref", sa.Text, primary_key=True),
        sa.Column("issue_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("phone", sa.Text),
        sa.Column("phone_masked", sa.Text),
        sa.Column("invited_by", sa.Text, nullable=False),
        sa.Column("invited_at", TZ, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("supervisors_issue_id", "supervisors", ["issue_id"], schema=SCHEMA)
    op.create_table(
        "supervisions",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("issue_id", sa.Text, nullable=False),
        sa.Column(
            "supervisor_ref",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.supervisors.supervisor_ref"),
            nullable=False,
        ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("satisfied", sa.Boolean, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("supervisions_issue_id", "supervisions", ["issue_id"], schema=SCHEMA)
    op.create_table(
        "resolutions",
        sa.Column("issue_id", sa.Text, primary_key=True),
        sa.Column("resolved", sa.Boolean, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "replies",
        sa.Column("reply_id", sa.Text, primary_key=True),
        sa.Column("issue_id", sa.Text, nullable=False),
        sa.Column("reporter_ref", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("token", sa.Text),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("cause_event_id", sa.Text, nullable=False),
        sa.Column("correlation_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("held_until", TZ),
        sa.Column("channel", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sent_at", TZ),
        sa.UniqueConstraint("cause_event_id", "reporter_ref", name="replies_cause_reporter_key"),
        schema=SCHEMA,
    )
    op.create_index("replies_issue_id", "replies", ["issue_id"], schema=SCHEMA)
    op.create_index(
        "replies_due",
        "replies",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "feedback",
        sa.Column(
            "reply_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.replies.reply_id"), primary_key=True
        ),
        sa.Column("issue_id", sa.Text, nullable=False),
        sa.Column("reporter_ref", sa.Text, nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("revisit", sa.Boolean, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("feedback_issue_id", "feedback", ["issue_id"], schema=SCHEMA)
    op.create_index(
        "feedback_revisits",
        "feedback",
        ["recorded_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("revisit"),
    )


def downgrade() -> None:
    for table in ("feedback", "replies", "resolutions", "supervisions", "supervisors"):
        op.drop_table(table, schema=SCHEMA)
