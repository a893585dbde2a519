"""The list keeps its own record of the events it folded (``issue_events``), so it re-folds
a late event and answers "as of" from its own table, not the audit trail's: the two read
models run and rebuild apart. Filled from the audit trail for databases that have one.

Revision ID: projection_0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "projection_0010"
down_revision = "projection_0009"
branch_labels = None
depends_on = None
SCHEMA = "projection"


def upgrade() -> None:
    op.create_table(
        "issue_events",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("issue_id", sa.Text(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("dataversion", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        schema=SCHEMA,
    )
    op.execute(
        f"INSERT INTO {SCHEMA}.issue_events "
        "(event_id, issue_id, epoch, seq, type, dataversion, time, data) "
        "SELECT event_id, issue_id, stream_epoch, stream_seq, type, dataversion, time, data "
        f"FROM {SCHEMA}.events"
    )
    op.create_index(
        "issue_events_issue", "issue_events", ["issue_id", "epoch", "seq"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("issue_events", schema=SCHEMA)
