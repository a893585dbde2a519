"""Major affairs, money and look-back: each case keeps its plan (milestones as JSON, the
day they are counted from, the earliest due date of those not done, whether one of those
is provisional), its funding entries (JSON), who resolved it,
which unit looks back, and how many look-backs failed.

Revision ID: followup_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "followup_0004"
down_revision = "followup_0003"
branch_labels = None
depends_on = None
SCHEMA = "followup"


def upgrade() -> None:
    for name in ("plan_template", "resolved_by", "lookback_unit"):
        op.add_column("cases", sa.Column(name, sa.Text), schema=SCHEMA)
    op.add_column("cases", sa.Column("milestone_due", sa.Date), schema=SCHEMA)
    op.add_column("cases", sa.Column("plan_counted_from", sa.Date), schema=SCHEMA)
    op.add_column(
        "cases",
        sa.Column("milestones_provisional", sa.Boolean, nullable=False, server_default="false"),
        schema=SCHEMA,
    )
    op.alter_column("cases", "milestones_provisional", server_default=None, schema=SCHEMA)
    for name in ("milestones", "funds"):
        op.add_column(
            "cases", sa.Column(name, sa.Text, nullable=False, server_default="[]"), schema=SCHEMA
        )
        op.alter_column("cases", name, server_default=None, schema=SCHEMA)
    op.add_column(
        "cases",
        sa.Column("lookback_failures", sa.Integer, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.alter_column("cases", "lookback_failures", server_default=None, schema=SCHEMA)
    op.create_index(
        "cases_milestone_waiting",
        "cases",
        ["milestone_due"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'assigned'"),
    )


def downgrade() -> None:
    op.drop_index("cases_milestone_waiting", "cases", schema=SCHEMA)
    for name in (
        "lookback_failures",
        "funds",
        "milestones",
        "milestones_provisional",
        "plan_counted_from",
        "milestone_due",
        "lookback_unit",
        "resolved_by",
        "plan_template",
    ):
        op.drop_column("cases", name, schema=SCHEMA)
