"""Department systems on NATS: each case keeps the source and ticket id it was reported
with; outbox rows for other streams (outcomes, dead letters), a dead letter's reason code,
and each ingress message's outcome.

Revision ID: followup_0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

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
    op.drop_index("cases_external_ref", table_name="cases", schema=SCHEMA)
    op.drop_column("cases", "external_ref", schema=SCHEMA)
    op.drop_column("cases", "source", schema=SCHEMA)
