"""Intake: an Idempotency-Key is unique per source channel, not across all callers.

Revision ID: intake_0002
"""

from alembic import op

revision = "intake_0002"
down_revision = "intake_0001"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.drop_constraint("reports_idempotency_key_key", "reports", schema=SCHEMA, type_="unique")
    op.create_unique_constraint(
        "reports_source_idempotency_key_key",
        "reports",
        ["source", "idempotency_key"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    # Fails if two sources have used the same key since the upgrade: resolve those first.
    op.drop_constraint(
        "reports_source_idempotency_key_key", "reports", schema=SCHEMA, type_="unique"
    )
    op.create_unique_constraint(
        "reports_idempotency_key_key", "reports", ["idempotency_key"], schema=SCHEMA
    )
