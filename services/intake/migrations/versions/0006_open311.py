"""Open311: api keys (hashes only), each request's extras (email, device, media), media.

Revision ID: intake_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0006"
down_revision = "intake_0005"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "open311_api_keys",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_table(
        "open311_requests",
        sa.Column(
            "report_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.reports.report_id"), primary_key=True
        ),
        sa.Column(
            "key_id",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.open311_api_keys.key_id"),
            nullable=False,
        ),
        sa.Column("email", sa.Text),
        sa.Column("device_id", sa.Text),
        sa.Column("account_id", sa.Text),
        sa.Column("address_id", sa.Text),
        sa.Column("media_url", sa.Text),
        sa.Column("media_id", sa.Text),
        schema=SCHEMA,
    )
    op.create_table(
        "open311_media",
        sa.Column("media_id", sa.Text, primary_key=True),
        sa.Column(
            "report_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.reports.report_id"), nullable=False
        ),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("reports_received_at", "reports", ["received_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("reports_received_at", "reports", schema=SCHEMA)
    op.drop_table("open311_media", schema=SCHEMA)
    op.drop_table("open311_requests", schema=SCHEMA)
    op.drop_table("open311_api_keys", schema=SCHEMA)
