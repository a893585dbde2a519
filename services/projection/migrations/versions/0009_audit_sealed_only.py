"""The audit table holds only what its seal covers: the received envelope and the time the
row was written, which no hash covered, are dropped (the rebuild makes the events the
stream no longer has from the sealed columns; the message as received stays in the stream).

Revision ID: projection_0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "projection_0009"
down_revision = "projection_0008"
branch_labels = None
depends_on = None
SCHEMA = "projection"


def upgrade() -> None:
    op.drop_column("events", "envelope", schema=SCHEMA)
    op.drop_column("events", "recorded_at", schema=SCHEMA)


def downgrade() -> None:
    op.add_column(
        "events",
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=SCHEMA,
    )
    op.add_column("events", sa.Column("envelope", JSONB), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.events SET envelope = jsonb_strip_nulls(jsonb_build_object("
        "'specversion', '1.0', 'id', event_id, 'source', source, 'type', type, "
        "'subject', issue_id, 'time', to_char(time AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'datacontenttype', 'application/json', "
        "'data', data, 'dataversion', dataversion, 'correlationid', correlationid, "
        "'causationid', causationid, 'actor', actor))"
    )
    op.alter_column("events", "envelope", nullable=False, schema=SCHEMA)
