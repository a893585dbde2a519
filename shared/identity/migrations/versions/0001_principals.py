"""Identity schema: principals, memberships, tokens, sessions.

Revision ID: identity_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "identity"
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("principal_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text),
        sa.Column("source", sa.Text),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("disabled_at", AT),
        sa.Column("disabled_by", sa.Text),
        schema=SCHEMA,
    )
    owner = sa.ForeignKey("identity.principals.principal_id", ondelete="CASCADE")
    op.create_table(
        "memberships",
        sa.Column("principal_id", sa.Text, owner, primary_key=True),
        sa.Column("unit", sa.Text, primary_key=True),
        sa.Column("role", sa.Text, primary_key=True),
        sa.Column("granted_at", AT, nullable=False),
        sa.Column("granted_by", sa.Text, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.Text, primary_key=True),
        sa.Column(
            "principal_id",
            sa.Text,
            sa.ForeignKey("identity.principals.principal_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("expires_at", AT),
        sa.Column("revoked_at", AT),
        sa.Column("revoked_by", sa.Text),
        schema=SCHEMA,
    )
    op.create_index("tokens_principal", "tokens", ["principal_id"], schema=SCHEMA)
    op.create_table(
        "sessions",
        sa.Column("session_hash", sa.Text, primary_key=True),
        sa.Column(
            "principal_id",
            sa.Text,
            sa.ForeignKey("identity.principals.principal_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.Text, nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("seen_at", AT, nullable=False),
        sa.Column("expires_at", AT, nullable=False),
        sa.Column("ended_at", AT),
        schema=SCHEMA,
    )
    op.create_index("sessions_principal", "sessions", ["principal_id"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("sessions", "tokens", "memberships", "principals"):
        op.drop_table(table, schema=SCHEMA)
