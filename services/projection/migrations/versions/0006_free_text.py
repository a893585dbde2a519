"""Free text for Chinese: each matter's normalised text and its character pairs, with a GIN
index on the pairs; existing matters are filled in here.

Revision ID: projection_0006
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

from minqing.services.projection.search import searchable

revision = "projection_0006"
down_revision = "projection_0005"
branch_labels = None
depends_on = None
SCHEMA = "projection"
BATCH = 5000


def upgrade() -> None:
    op.add_column(
        "issues",
        sa.Column("search_text", sa.Text, nullable=False, server_default=""),
        schema=SCHEMA,
    )
    op.add_column(
        "issues",
        sa.Column("search_grams", ARRAY(sa.Text), nullable=False, server_default="{}"),
        schema=SCHEMA,
    )
    _fill(op.get_bind())
    for name in ("search_text", "search_grams"):
        op.alter_column("issues", name, server_default=None, schema=SCHEMA)
    op.create_index(
        "issues_search", "issues", ["search_grams"], schema=SCHEMA, postgresql_using="gin"
    )


def _fill(connection: Any) -> None:
    rows = connection.execute(
        sa.text(f"SELECT issue_id, title, description, address, external_ref FROM {SCHEMA}.issues")
    ).all()
    update = sa.text(
        f"UPDATE {SCHEMA}.issues SET search_text = :text, search_grams = :grams "
        "WHERE issue_id = :issue_id"
    ).bindparams(sa.bindparam("grams", type_=ARRAY(sa.Text)))
    batch: list[dict[str, Any]] = []
    for row in rows:
        text, grams = searchable(row[1:])
        batch.append({"issue_id": row[0], "text": text, "grams": grams})
        if len(batch) >= BATCH:
            connection.execute(update, batch)
            batch.clear()
    if batch:
        connection.execute(update, batch)


def downgrade() -> None:
    op.drop_index("issues_search", "issues", schema=SCHEMA)
    op.drop_column("issues", "search_grams", schema=SCHEMA)
    op.drop_column("issues", "search_text", schema=SCHEMA)
