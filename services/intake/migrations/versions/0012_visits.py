"""Door-to-door visits that found nothing to report (``visits``): households visited per
village, counted beside the matters reported on visits.

Revision ID: intake_0012
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0012"
down_revision = "intake_0011"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "visits",
        sa.Column("visit_id", sa.Text, primary_key=True),
        sa.Column("visitor", sa.Text, nullable=False),
        sa.Column("visitor_name", sa.Text, nullable=False),
        sa.Column("village", sa.Text, nullable=False),
        sa.Column("households", sa.Integer, nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("request_hash", sa.Text),
        sa.UniqueConstraint("visitor", "idempotency_key", name="visits_visitor_idempotency_key"),
        schema=SCHEMA,
    )
    op.create_index("visits_village_visited_at", "visits", ["village", "visited_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("visits", schema=SCHEMA)
