"""A report may say its scale (small matter or major affair).

Revision ID: intake_0009
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0009"
down_revision = "intake_0008"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.add_column("reports", sa.Column("scale", sa.Text), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("reports", "scale", schema=SCHEMA)
