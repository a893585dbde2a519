"""One durable per read model; events keyed by id and placed by (stream epoch, sequence).

Revision ID: projection_0002
"""

import sqlalchemy as sa
from alembic import op

from minqing.shared.persistence.migration_ops import upgrade_plumbing_v2

revision = "projection_0002"
down_revision = "projection_0001"
branch_labels = None
depends_on = None
SCHEMA = "projection"


def upgrade() -> None:
    upgrade_plumbing_v2(SCHEMA, consumer="projection")
    op.alter_column("events", "position", new_column_name="stream_seq", schema=SCHEMA)
    op.add_column(
        "events",
        sa.Column("stream_epoch", sa.Integer, nullable=False, server_default="1"),
        schema=SCHEMA,
    )
    op.alter_column("events", "stream_epoch", server_default=None, schema=SCHEMA)
    op.drop_constraint("events_pkey", "events", schema=SCHEMA)
    op.drop_constraint("events_event_id_key", "events", schema=SCHEMA)
    op.create_primary_key("events_pkey", "events", ["event_id"], schema=SCHEMA)
    op.drop_index("events_issue_position", "events", schema=SCHEMA)
    op.create_index(
        "events_issue_position",
        "events",
        ["issue_id", "stream_epoch", "stream_seq"],
        schema=SCHEMA,
    )
    op.add_column("issues", sa.Column("deadline_calendar", sa.Text), schema=SCHEMA)
    op.execute(
        f"UPDATE \"{SCHEMA}\".issues SET deadline_calendar = 'weekdays' WHERE deadline IS NOT NULL"
    )
    op.add_column(
        "issues",
        sa.Column("last_epoch", sa.Integer, nullable=False, server_default="1"),
        schema=SCHEMA,
    )
    op.alter_column("issues", "last_epoch", server_default=None, schema=SCHEMA)
    # Matters made only of unknown event types never belonged in the list.
    op.execute(f'DELETE FROM "{SCHEMA}".issues WHERE status IS NULL')


def downgrade() -> None:
    raise NotImplementedError("projection_0002 is not downgraded; restore a backup instead")
