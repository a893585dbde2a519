"""Assignment schema: current assignments, outbox/inbox/dead letters.

Revision ID: assignment_0001
"""

import sqlalchemy as sa
from alembic import op

from minqing.shared.persistence.migration_ops import create_plumbing_v1

revision = "assignment_0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "assignment"


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("issue_id", sa.Text, primary_key=True),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("village", sa.Text, nullable=False),
        sa.Column("unit", sa.Text, nullable=False),
        sa.Column("person_id", sa.Text, nullable=False),
        sa.Column("person_name", sa.Text, nullable=False),
        sa.Column("deadline", sa.Date, nullable=False),
        sa.Column("assignment_no", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    create_plumbing_v1(SCHEMA)


def downgrade() -> None:
    for table in ("dead_letters", "inbox", "outbox", "assignments"):
        op.drop_table(table, schema=SCHEMA)
