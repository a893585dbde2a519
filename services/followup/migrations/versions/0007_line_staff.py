"""Line staff and their look-backs: the registry of line staff (who looks back as line
staff of which unit, in which villages), and on each case what a visitor needs on the site
(title, village, address, the resolution's summary) and a re-visit a resident's low score
asked for (why, and by when).

Revision ID: followup_0007
"""

import sqlalchemy as sa
from alembic import op

revision = "followup_0007"
down_revision = "followup_0006"
branch_labels = None
depends_on = None
SCHEMA = "followup"
TEXTS = ("title", "village", "address", "summary", "revisit_reason")


def upgrade() -> None:
    for name in TEXTS:
        op.add_column("cases", sa.Column(name, sa.Text), schema=SCHEMA)
    op.add_column("cases", sa.Column("revisit_due", sa.Date), schema=SCHEMA)
    op.create_table(
        "line_staff",
        sa.Column("person_id", sa.Text, primary_key=True),
        sa.Column("person_name", sa.Text, nullable=False),
        sa.Column("unit", sa.Text, nullable=False),
        sa.Column("villages", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("seeded", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("line_staff", schema=SCHEMA)
    for name in (*TEXTS, "revisit_due"):
        op.drop_column("cases", name, schema=SCHEMA)
