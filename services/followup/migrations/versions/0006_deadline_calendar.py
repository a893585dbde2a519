"""Each case says which calendar counted its deadline.

Revision ID: followup_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "followup_0006"
down_revision = "followup_0005"
branch_labels = None
depends_on = None
SCHEMA = "followup"


def upgrade() -> None:
    op.add_column("cases", sa.Column("deadline_calendar", sa.Text), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("cases", "deadline_calendar", schema=SCHEMA)
