"""A matter's scale (small matter or major affair) as reported.

Revision ID: projection_0007
"""

import sqlalchemy as sa
from alembic import op

revision = "projection_0007"
down_revision = "projection_0006"
branch_labels = None
depends_on = None
SCHEMA = "projection"


def upgrade() -> None:
    op.add_column("issues", sa.Column("scale", sa.Text), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("issues", "scale", schema=SCHEMA)
