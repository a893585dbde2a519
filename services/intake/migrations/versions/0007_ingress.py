"""Department systems on NATS: outbox rows for other streams (outcomes, dead letters), a
dead letter's reason code, and each ingress message's outcome.

Revision ID: intake_0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "intake_0007"
down_revision = "intake_0006"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("stream", sa.Text), schema=SCHEMA)
    op.add_column("outbox", sa.Column("headers", JSONB), schema=SCHEMA)
    op.add_column("outbox", sa.Column("body", sa.LargeBinary), schema=SCHEMA)
    op.add_column("dead_letters", sa.Column("reason_code", sa.Text), schema=SCHEMA)
    op.create_table(
        "ingress_outcomes",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("ingress_id", sa.Text, primary_key=True),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("outcome", JSONB, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("ingress_outcomes", schema=SCHEMA)
    op.drop_column("dead_letters", "reason_code", schema=SCHEMA)
    for name in ("body", "headers", "stream"):
        op.drop_column("outbox", name, schema=SCHEMA)
