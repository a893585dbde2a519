"""Acceptance (签收): each assignment keeps who of its unit accepted it.

Existing assignments have no acceptance recorded (there was no accept before).

Revision ID: assignment_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "assignment_0005"
down_revision = "assignment_0004"
branch_labels = None
depends_on = None
SCHEMA = "assignment"


def upgrade() -> None:
    op.add_column("assignments", sa.Column("accepted_by", sa.Text), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("assignments", "accepted_by", schema=SCHEMA)
