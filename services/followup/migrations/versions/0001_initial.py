"""Followup schema: cases, outbox/inbox/dead letters.

Revision ID: followup_0001
"""

import sqlalchemy as sa
from alembic import op

from minqing.shared.persistence.migration_ops import create_plumbing_v1

revision = "followup_0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "followup"


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("issue_id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("last_event_id", sa.Text, nullable=False),
        sa.Column("correlation_id", sa.Text, nullable=False),
        sa.Column("assignment_no", sa.Integer, nullable=False),
        sa.Column("unit", sa.Text),
        sa.Column("deadline", sa.Date),
        sa.Column("lookback_due", sa.Date),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    create_plumbing_v1(SCHEMA)


def downgrade() -> None:
    for table in ("dead_letters", "inbox", "outbox", "cases"):
        op.drop_table(table, schema=SCHEMA)
