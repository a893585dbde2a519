"""Identity schema: the logins through the identity provider under way (OpenID Connect).

Revision ID: identity_0002
Revises: identity_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None
SCHEMA = "identity"


def upgrade() -> None:
    op.create_table(
        "oidc_logins",
        sa.Column("state_hash", sa.Text, primary_key=True),
        sa.Column("record", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("oidc_logins_created", "oidc_logins", ["created_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("oidc_logins", schema=SCHEMA)
