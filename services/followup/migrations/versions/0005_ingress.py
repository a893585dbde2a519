"""Department systems on NATS: each case keeps the source and ticket id it was reported
with; outbox rows for other streams (outcomes, dead letters), a dead letter's reason code,
and each ingress message's outcome.

Revision ID: followup_0005
"""

import sqlalchemy as sa
from alembic import op

from minqing.shared.persistence.migration_ops import add_ingress_plumbing, drop_ingress_plumbing

revision = "followup_0005"
down_revision = "followup_0004"
branch_labels = None
depends_on = None
SCHEMA = "followup"


def upgrade() -> None:
    op.add_column("cases", sa.Column("source", sa.Text), schema=SCHEMA)
    op.add_column("cases", sa.Column("external_ref", sa.Text), schema=SCHEMA)
    op.create_index(
        "cases_external_ref",
        "cases",
        ["source", "external_ref"],
        schema=SCHEMA,
        postgresql_where=sa.text("external_ref is not null"),
    )
    add_ingress_plumbing(SCHEMA)


def downgrade() -> None:
    drop_ingress_plumbing(SCHEMA)
    op.drop_index("cases_external_ref", table_name="cases", schema=SCHEMA)
    op.drop_column("cases", "external_ref", schema=SCHEMA)
    op.drop_column("cases", "source", schema=SCHEMA)
