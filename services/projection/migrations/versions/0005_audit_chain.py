"""The tamper-evident audit trail: every recorded event numbered in the log and sealed by
hash, chained to the log's previous entry and to its matter's previous entry. Events
recorded before are sealed here, in stream order.

Revision ID: projection_0005
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from minqing.services.projection.views.history import seal as audit

revision = "projection_0005"
down_revision = "projection_0004"
branch_labels = None
depends_on = None
SCHEMA = "projection"
COLUMNS = ("prev_hash", "hash", "issue_prev_hash", "issue_hash")
BATCH = 5000


def upgrade() -> None:
    op.add_column("events", sa.Column("log_seq", sa.BigInteger), schema=SCHEMA)
    for name in COLUMNS:
        op.add_column("events", sa.Column(name, sa.Text), schema=SCHEMA)
    _seal_existing(op.get_bind())
    for name in ("log_seq", *COLUMNS):
        op.alter_column("events", name, nullable=False, schema=SCHEMA)
    op.create_unique_constraint("events_log_seq_key", "events", ["log_seq"], schema=SCHEMA)
    op.create_index("events_issue_log", "events", ["issue_id", "log_seq"], schema=SCHEMA)


def _seal_existing(connection: Any) -> None:
    fields = ", ".join(f for f in audit.CANONICAL_FIELDS if f != "log_seq")
    rows = connection.execute(
        sa.text(f"SELECT {fields} FROM {SCHEMA}.events ORDER BY stream_epoch, stream_seq")
    ).mappings()
    head: tuple[int, str] = (0, audit.GENESIS)
    issues: dict[str, str] = {}
    update = sa.text(
        f"UPDATE {SCHEMA}.events SET log_seq = :log_seq, prev_hash = :prev_hash, "
        "hash = :hash, issue_prev_hash = :issue_prev_hash, issue_hash = :issue_hash "
        "WHERE event_id = :event_id"
    )
    batch: list[dict[str, Any]] = []
    for row in rows:
        entry = dict(row)
        [sealed] = audit.seal([entry], head, issues)
        head, issues[entry["issue_id"]] = (sealed.log_seq, sealed.hash), sealed.issue_hash
        batch.append({"event_id": entry["event_id"], **sealed.__dict__})
        if len(batch) >= BATCH:
            connection.execute(update, batch)
            batch.clear()
    if batch:
        connection.execute(update, batch)


def downgrade() -> None:
    op.drop_index("events_issue_log", "events", schema=SCHEMA)
    op.drop_constraint("events_log_seq_key", "events", schema=SCHEMA)
    for name in ("log_seq", *COLUMNS):
        op.drop_column("events", name, schema=SCHEMA)
