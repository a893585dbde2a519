"""Plumbing shape 2: inbox and dead letters per consumer, raw dead letters, positions, epochs.

Revision ID: assignment_0002
"""

from minqing.shared.persistence.migration_ops import upgrade_plumbing_v2

revision = "assignment_0002"
down_revision = "assignment_0001"
branch_labels = None
depends_on = None
SCHEMA = "assignment"


def upgrade() -> None:
    upgrade_plumbing_v2(SCHEMA, consumer=SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("plumbing shape 2 is not downgraded; restore a backup instead")
