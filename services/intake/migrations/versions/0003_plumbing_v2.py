"""Plumbing shape 2: inbox and dead letters per consumer, raw dead letters, positions, epochs.

Revision ID: intake_0003
"""

from minqing.shared.persistence.migration_ops import upgrade_plumbing_v2

revision = "intake_0003"
down_revision = "intake_0002"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    upgrade_plumbing_v2(SCHEMA, consumer=SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("plumbing shape 2 is not downgraded; restore a backup instead")
