"""Intake channels: a report has its own id (a duplicate report joins another's matter),
the sender's ticket id, the masked phone, and the matters with their status.

Revision ID: intake_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0004"
down_revision = "intake_0003"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.add_column("reports", sa.Column("report_id", sa.Text), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.reports SET report_id = issue_id")
    op.alter_column("reports", "report_id", nullable=False, schema=SCHEMA)
    op.drop_constraint("reports_pkey", "reports", schema=SCHEMA)
    op.create_primary_key("reports_pkey", "reports", ["report_id"], schema=SCHEMA)
    op.create_index("reports_issue_id", "reports", ["issue_id"], schema=SCHEMA)
    for name in ("reporter_phone_masked", "external_ref"):
        op.add_column("reports", sa.Column(name, sa.Text), schema=SCHEMA)
    op.add_column("reports", sa.Column("similarity", sa.Float), schema=SCHEMA)
    op.create_unique_constraint(
        "reports_source_external_ref_key", "reports", ["source", "external_ref"], schema=SCHEMA
    )
    op.create_table(
        "matters",
        sa.Column("issue_id", sa.Text, primary_key=True),
        sa.Column("village", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_notes", sa.Text, nullable=False),
        sa.Column("unit", sa.Text),
        sa.Column("deadline", sa.Date),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "matters_open_by_village_category",
        "matters",
        ["village", "category"],
        schema=SCHEMA,
        postgresql_where=sa.text("status <> 'closed'"),
    )
    op.execute(
        f"INSERT INTO {SCHEMA}.matters (issue_id, village, category, title, status, "
        "status_notes, reported_at, updated_at) SELECT issue_id, village, category, title, "
        f"'open', 'reported', received_at, received_at FROM {SCHEMA}.reports"
    )


def downgrade() -> None:
    op.drop_table("matters", schema=SCHEMA)
    op.drop_constraint("reports_source_external_ref_key", "reports", schema=SCHEMA)
    for name in ("similarity", "external_ref", "reporter_phone_masked"):
        op.drop_column("reports", name, schema=SCHEMA)
    op.drop_index("reports_issue_id", "reports", schema=SCHEMA)
    op.execute(f"DELETE FROM {SCHEMA}.reports WHERE report_id <> issue_id")
    op.drop_constraint("reports_pkey", "reports", schema=SCHEMA)
    op.create_primary_key("reports_pkey", "reports", ["issue_id"], schema=SCHEMA)
    op.drop_column("reports", "report_id", schema=SCHEMA)
