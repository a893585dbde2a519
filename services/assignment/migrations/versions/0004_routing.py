"""Routing as data and the registry of units: each assignment keeps its status, the scale
and source it was routed by, the rule that matched, the unit its responsible person comes
from, a send-back and the matter's correlation id; the registry of units keeps who is
responsible for each unit.

Existing assignments become status 'assigned' (this service did not follow resolutions
before) and have no rule, scale, source, responsible unit or correlation id recorded.

Revision ID: assignment_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "assignment_0004"
down_revision = "assignment_0003"
branch_labels = None
depends_on = None
SCHEMA = "assignment"
OPTIONAL = (
    "scale",
    "source",
    "responsible_unit",
    "rule_id",
    "sent_back_reason",
    "correlation_id",
)


def upgrade() -> None:
    op.add_column(
        "assignments",
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'assigned'")),
        schema=SCHEMA,
    )
    op.alter_column("assignments", "status", server_default=None, schema=SCHEMA)
    for name in OPTIONAL:
        op.add_column("assignments", sa.Column(name, sa.Text), schema=SCHEMA)
    op.create_index(
        "assignments_open_by_responsible_unit",
        "assignments",
        ["responsible_unit"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'assigned'"),
    )
    op.create_table(
        "units",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("village", sa.Text),
        sa.Column("person_id", sa.Text, nullable=False),
        sa.Column("person_name", sa.Text, nullable=False),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("seeded_person_id", sa.Text, nullable=False),
        sa.Column("seeded_person_name", sa.Text, nullable=False),
        sa.Column("seeded_contact", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("units", schema=SCHEMA)
    op.drop_index("assignments_open_by_responsible_unit", "assignments", schema=SCHEMA)
    for name in ("status", *OPTIONAL):
        op.drop_column("assignments", name, schema=SCHEMA)
