"""Plumbing shape 2: inbox and dead letters per consumer, raw dead letters, positions, epochs.

Revision ID: followup_0002
"""

from minqing.shared.persistence.migration_ops import upgrade_plumbing_v2

revision = "followup_0002"
down_revision = "followup_0001"
branch_labels = None
depends_on = None
SCHEMA = "followup"


def upgrade() -> None:
    upgrade_plumbing_v2(SCHEMA, consumer=SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("plumbing shape 2 is not downgraded; restore a backup instead")
