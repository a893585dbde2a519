"""Compiled lists: import jobs and their rows, each with its result once known.

Revision ID: intake_0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "intake_0005"
down_revision = "intake_0004"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("import_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("filename", sa.Text),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("header_row", sa.Integer, nullable=False),
        sa.Column("columns", JSONB, nullable=False),
        sa.Column("ignored_columns", JSONB, nullable=False),
        sa.Column("blank_rows", JSONB, nullable=False),
        sa.Column("total_rows", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_table(
        "import_rows",
        sa.Column(
            "import_id",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.imports.import_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("command", JSONB),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("request_hash", sa.Text),
        sa.Column("result", JSONB),
        schema=SCHEMA,
    )
    op.create_index(
        "import_rows_pending",
        "import_rows",
        ["import_id", "row"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_table("import_rows", schema=SCHEMA)
    op.drop_table("imports", schema=SCHEMA)
