"""The working calendar: each case keeps the day it was resolved and whether its look-back
due date is provisional (days no calendar source knew yet).

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
    op.create_index(
        "cases_provisional",
        "cases",
        ["issue_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("lookback_provisional"),
    )


def downgrade() -> None:
    op.drop_index("cases_provisional", "cases", schema=SCHEMA)
    op.drop_column("cases", "lookback_provisional", schema=SCHEMA)
    op.drop_column("cases", "resolved_on", schema=SCHEMA)
