"""Staff's photos (``photos``): uploaded with a report, a resolution, a look-back or a
re-visit, kept private, pruned by the retention rule (the row stays, the bytes go).

Revision ID: intake_0013
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0013"
down_revision = "intake_0012"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("photo_id", sa.Text, primary_key=True),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("bytes", sa.LargeBinary),
        sa.Column("uploaded_by", sa.Text, nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issue_id", sa.Text),
        sa.Column("stage", sa.Text),
        sa.Column("attached_at", sa.DateTime(timezone=True)),
        sa.Column("pruned_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index(
        "photos_uploader_sha256",
        "photos",
        ["uploaded_by", "sha256"],
        unique=True,
        postgresql_where=sa.text("pruned_at IS NULL"),
        schema=SCHEMA,
    )
    op.create_index("photos_issue_id", "photos", ["issue_id"], schema=SCHEMA)
    op.create_index(
        "photos_kept_uploaded_at",
        "photos",
        ["uploaded_at"],
        postgresql_where=sa.text("pruned_at IS NULL"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("photos", schema=SCHEMA)
