"""Intake schema: reports, reporter contacts, outbox/inbox/dead letters.

Revision ID: intake_0001
"""

import sqlalchemy as sa
from alembic import op

from minqing.shared.persistence.migration_ops import create_plumbing_v1

revision = "intake_0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("issue_id", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("village", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("reporter_ref", sa.Text),
        sa.Column("address", sa.Text),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.Text, unique=True),
        sa.Column("request_hash", sa.Text),
        schema=SCHEMA,
    )
    op.create_table(
        "reporter_contacts",
        sa.Column("reporter_ref", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    create_plumbing_v1(SCHEMA)


def downgrade() -> None:
    for table in ("dead_letters", "inbox", "outbox", "reporter_contacts", "reports"):
        op.drop_table(table, schema=SCHEMA)
