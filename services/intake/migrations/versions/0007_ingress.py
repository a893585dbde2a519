"""Department systems on NATS: outbox rows for other streams (outcomes, dead letters), a
dead letter's reason code, and each ingress message's outcome.

Revision ID: intake_0007
"""

from minqing.shared.persistence.migration_ops import add_ingress_plumbing, drop_ingress_plumbing

revision = "intake_0007"
down_revision = "intake_0006"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    add_ingress_plumbing(SCHEMA)


def downgrade() -> None:
    drop_ingress_plumbing(SCHEMA)
