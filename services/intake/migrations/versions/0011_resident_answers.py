"""What residents are told of a matter on the public pages: the stage it reached, the
unit's summary, the look-back visit's notes (``answers``).

Revision ID: intake_0011
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0011"
down_revision = "intake_0010"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("issue_id", sa.Text, primary_key=True),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("lookback_due", sa.Date),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("answers", schema=SCHEMA)
