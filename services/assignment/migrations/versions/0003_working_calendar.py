"""The working calendar: each assignment keeps what its deadline was counted from, on which
calendar, and whether it is provisional (days no calendar source knew yet).

Revision ID: assignment_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "assignment_0003"
down_revision = "assignment_0002"
branch_labels = None
depends_on = None
SCHEMA = "assignment"


def upgrade() -> None:
    op.add_column("assignments", sa.Column("assigned_on", sa.Date), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.assignments SET assigned_on = "
        "(updated_at AT TIME ZONE 'Asia/Shanghai')::date"
    )
    op.alter_column("assignments", "assigned_on", nullable=False, schema=SCHEMA)
    columns = [
        ("working_days", sa.Integer, "0"),
        ("calendar", sa.Text, "weekdays"),  # every deadline before was counted Monday-Friday
        ("deadline_provisional", sa.Boolean, "false"),
    ]
    for name, type_, default in columns:
        op.add_column(
            "assignments",
            sa.Column(name, type_, nullable=False, server_default=sa.text(f"'{default}'")),
            schema=SCHEMA,
        )
        op.alter_column("assignments", name, server_default=None, schema=SCHEMA)
    op.create_index(
        "assignments_provisional",
        "assignments",
        ["issue_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("deadline_provisional"),
    )


def downgrade() -> None:
    op.drop_index("assignments_provisional", "assignments", schema=SCHEMA)
    for name in ("deadline_provisional", "calendar", "working_days", "assigned_on"):
        op.drop_column("assignments", name, schema=SCHEMA)
