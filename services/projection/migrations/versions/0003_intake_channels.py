"""Intake channels: the sender's ticket id, the masked phone, splits and duplicate reports.

Revision ID: projection_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "projection_0003"
down_revision = "projection_0002"
branch_labels = None
depends_on = None
SCHEMA = "projection"


def upgrade() -> None:
    for name in ("reporter_phone_masked", "external_ref", "split_from"):
        op.add_column("issues", sa.Column(name, sa.Text), schema=SCHEMA)
    op.add_column(
        "issues",
        sa.Column("duplicate_count", sa.Integer, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.alter_column("issues", "duplicate_count", server_default=None, schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("issues", "duplicate_count", schema=SCHEMA)
    for name in ("split_from", "external_ref", "reporter_phone_masked"):
        op.drop_column("issues", name, schema=SCHEMA)
