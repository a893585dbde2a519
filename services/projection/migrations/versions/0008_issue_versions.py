"""Every earlier state of each matter, for the list and statistics "as of" a past time
(states of matters recorded before are folded here from the audit trail); the events the
statistics count under an index of their own.

Revision ID: projection_0008
"""

from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

from minqing.services.projection.views.issues.fold import Recorded, fold_versions

revision = "projection_0008"
down_revision = "projection_0007"
branch_labels = None
depends_on = None
SCHEMA = "projection"
BATCH = 5000
FIGURE_TYPES = (  # the events the statistics count
    "minqing.issue.lookback_passed",
    "minqing.issue.lookback_failed",
    "minqing.issue.feedback_recorded",
    "minqing.issue.funding_recorded",
)


def upgrade() -> None:
    versions = op.create_table(
        "issue_versions",
        sa.Column("issue_id", sa.Text(), primary_key=True),
        sa.Column("status", sa.Text()),
        sa.Column("title", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("category", sa.Text()),
        sa.Column("village", sa.Text()),
        sa.Column("source", sa.Text()),
        sa.Column("reporter_ref", sa.Text()),
        sa.Column("reporter_phone_masked", sa.Text()),
        sa.Column("external_ref", sa.Text()),
        sa.Column("split_from", sa.Text()),
        sa.Column("scale", sa.Text()),
        sa.Column("duplicate_count", sa.Integer(), nullable=False),
        sa.Column("address", sa.Text()),
        sa.Column("lat", sa.Float()),
        sa.Column("lon", sa.Float()),
        sa.Column("unit", sa.Text()),
        sa.Column("responsible_person_id", sa.Text()),
        sa.Column("responsible_person_name", sa.Text()),
        sa.Column("deadline", sa.Date()),
        sa.Column("deadline_calendar", sa.Text()),
        sa.Column("deadline_provisional", sa.Boolean(), nullable=False),
        sa.Column("deadline_note", sa.Text()),
        sa.Column("assignment_no", sa.Integer(), nullable=False),
        sa.Column("lookback_due", sa.Date()),
        sa.Column("lookback_due_provisional", sa.Boolean(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("escalated_to", sa.Text()),
        sa.Column("reported_at", sa.DateTime(timezone=True)),
        sa.Column("assigned_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("last_event_at", sa.DateTime(timezone=True)),
        sa.Column("last_epoch", sa.Integer(), nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.Integer(), primary_key=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("issue_versions_valid", "issue_versions", ["valid_to"], schema=SCHEMA)
    _fold_existing(op.get_bind(), versions)
    op.create_index(
        "events_figures",
        "events",
        ["type", "issue_id"],
        schema=SCHEMA,
        postgresql_where=sa.text(f"type IN ({', '.join(repr(t) for t in FIGURE_TYPES)})"),
    )


def _fold_existing(connection: Any, versions: sa.Table) -> None:
    rows = connection.execute(
        sa.text(
            "SELECT issue_id, event_id, stream_epoch, stream_seq, type, dataversion, time, data "
            f"FROM {SCHEMA}.events ORDER BY issue_id, stream_epoch, stream_seq"
        )
    )
    names = [c.name for c in versions.c if c.name != "valid_to"]
    batch: list[dict[str, Any]] = []
    for issue_id, group in groupby(rows, key=lambda r: r.issue_id):
        records = [
            Recorded(
                r.stream_seq, r.type, r.dataversion, r.time, r.data, r.stream_epoch, r.event_id
            )
            for r in group
        ]
        for view, valid_to in fold_versions(issue_id, records)[1]:
            batch.append({**{n: getattr(view, n) for n in names}, "valid_to": valid_to})
        if len(batch) >= BATCH:
            connection.execute(versions.insert(), batch)
            batch = []
    if batch:
        connection.execute(versions.insert(), batch)


def downgrade() -> None:
    op.drop_index("events_figures", "events", schema=SCHEMA)
    op.drop_table("issue_versions", schema=SCHEMA)
