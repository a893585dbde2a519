"""An invited resident supervisor's name can be erased (kept NULL, as the phone could be).

Revision ID: intake_0010
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0010"
down_revision = "intake_0009"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.alter_column("supervisors", "name", existing_type=sa.Text, nullable=True, schema=SCHEMA)


def downgrade() -> None:
    op.execute(f"UPDATE {SCHEMA}.supervisors SET name = '' WHERE name IS NULL")
    op.alter_column("supervisors", "name", existing_type=sa.Text, nullable=False, schema=SCHEMA)
