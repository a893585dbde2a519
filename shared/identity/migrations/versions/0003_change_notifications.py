"""Identity schema: every change of principals, memberships or tokens is announced on the
``minqing_identity`` channel (NOTIFY, sent at commit), whoever makes it, so that services
forget the token holders they keep (shared/identity/cache.py).

Revision ID: identity_0003
Revises: identity_0002
"""

from alembic import op

revision = "identity_0003"
down_revision = "identity_0002"
branch_labels = None
depends_on = None
SCHEMA = "identity"
TABLES = ("principals", "memberships", "tokens")


def upgrade() -> None:
    op.execute(
        f"""
        create function {SCHEMA}.announce_change() returns trigger
        language plpgsql as $$
        begin
            perform pg_notify('minqing_identity', tg_table_name);
            return null;
        end
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"create trigger {table}_changed after insert or update or delete or truncate "
            f"on {SCHEMA}.{table} for each statement execute function {SCHEMA}.announce_change()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"drop trigger {table}_changed on {SCHEMA}.{table}")
    op.execute(f"drop function {SCHEMA}.announce_change()")
