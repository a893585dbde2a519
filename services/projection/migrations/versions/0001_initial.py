"""Projection schema: events (the audit trail), issues (the list), plumbing.

Revision ID: projection_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from minqing.shared.persistence.migration_ops import create_plumbing_v1

revision = "projection_0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "projection"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("issue_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("dataversion", sa.Integer, nullable=False),
        sa.Column("correlationid", sa.Text, nullable=False),
        sa.Column("causationid", sa.Text),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("envelope", JSONB, nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=SCHEMA,
    )
    op.create_index("events_issue_position", "events", ["issue_id", "position"], schema=SCHEMA)
    op.create_table(
        "issues",
        sa.Column("issue_id", sa.Text, primary_key=True),
        *(
            sa.Column(name, sa.Text)
            for name in (
                "status",
                "title",
                "description",
                "category",
                "village",
                "source",
                "reporter_ref",
                "address",
                "unit",
                "responsible_person_id",
                "responsible_person_name",
            )
        ),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("deadline", sa.Date),
        sa.Column("assignment_no", sa.Integer, nullable=False),
        sa.Column("lookback_due", sa.Date),
        *(
            sa.Column(name, sa.DateTime(timezone=True))
            for name in (
                "reported_at",
                "assigned_at",
                "resolved_at",
                "closed_at",
                "last_event_at",
            )
        ),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    for column in ("status", "village", "unit", "category"):
        op.create_index(f"issues_{column}", "issues", [column], schema=SCHEMA)
    create_plumbing_v1(SCHEMA)


def downgrade() -> None:
    for table in ("dead_letters", "inbox", "outbox", "issues", "events"):
        op.drop_table(table, schema=SCHEMA)
