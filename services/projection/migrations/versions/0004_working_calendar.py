"""The working calendar and escalation: provisional deadlines and look-back due dates, and
why; how far an overdue matter has escalated, and to whom.

Revision ID: projection_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "projection_0004"
down_revision = "projection_0003"
branch_labels = None
depends_on = None
SCHEMA = "projection"


def upgrade() -> None:
    for name in ("deadline_provisional", "lookback_due_provisional"):
        op.add_column(
            "issues",
            sa.Column(name, sa.Boolean, nullable=False, server_default="false"),
            schema=SCHEMA,
        )
        op.alter_column("issues", name, server_default=None, schema=SCHEMA)
    op.add_column("issues", sa.Column("deadline_note", sa.Text), schema=SCHEMA)
    op.add_column(
        "issues",
        sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.alter_column("issues", "escalation_level", server_default=None, schema=SCHEMA)
    op.add_column("issues", sa.Column("escalated_to", sa.Text), schema=SCHEMA)


def downgrade() -> None:
    for name in (
        "escalated_to",
        "escalation_level",
        "deadline_note",
        "lookback_due_provisional",
        "deadline_provisional",
    ):
        op.drop_column("issues", name, schema=SCHEMA)
