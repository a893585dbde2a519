"""The working calendar and escalation: each case keeps the day it was resolved, whether its
look-back due date is provisional, who is responsible, and how far an overdue escalated.

Revision ID: followup_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "followup_0003"
down_revision = "followup_0002"
branch_labels = None
depends_on = None
SCHEMA = "followup"


def upgrade() -> None:
    op.add_column("cases", sa.Column("resolved_on", sa.Date), schema=SCHEMA)
    op.add_column(
        "cases",
        sa.Column("lookback_provisional", sa.Boolean, nullable=False, server_default="false"),
        schema=SCHEMA,
    )
    op.alter_column("cases", "lookback_provisional", server_default=None, schema=SCHEMA)
    for name in ("responsible_person_id", "responsible_person_name", "overdue_kind"):
        op.add_column("cases", sa.Column(name, sa.Text), schema=SCHEMA)
    op.add_column("cases", sa.Column("overdue_due", sa.Date), schema=SCHEMA)
    op.add_column(
        "cases",
        sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.alter_column("cases", "escalation_level", server_default=None, schema=SCHEMA)
    op.create_index(
        "cases_deadline_waiting",
        "cases",
        ["deadline"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'assigned'"),
    )
    op.create_index(
        "cases_lookback_waiting",
        "cases",
        ["lookback_due"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'resolved'"),
    )
    op.create_index(
        "cases_provisional",
        "cases",
        ["issue_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("lookback_provisional"),
    )


def downgrade() -> None:
    op.drop_index("cases_lookback_waiting", "cases", schema=SCHEMA)
    op.drop_index("cases_deadline_waiting", "cases", schema=SCHEMA)
    for name in (
        "escalation_level",
        "overdue_due",
        "overdue_kind",
        "responsible_person_name",
        "responsible_person_id",
    ):
        op.drop_column("cases", name, schema=SCHEMA)
    op.drop_index("cases_provisional", "cases", schema=SCHEMA)
    op.drop_column("cases", "lookback_provisional", schema=SCHEMA)
    op.drop_column("cases", "resolved_on", schema=SCHEMA)
