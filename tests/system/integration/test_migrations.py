"""Each schema's Alembic migrations (the identity schema's and each service's) build exactly
the tables its code declares."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from minqing.services.assignment.store import metadata as assignment
from minqing.services.followup.store import metadata as followup
from minqing.services.intake.store import metadata as intake
from minqing.services.projection.store import metadata as projection
from minqing.shared.identity.tables import metadata as identity


def _differences(conn: Connection, metadata: MetaData) -> list[object]:
    context = MigrationContext.configure(
        conn,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, parent: (
                type_ != "schema" or name == metadata.schema
            ),
            "compare_type": True,
        },
    )
    return [
        diff
        for diff in compare_metadata(context, metadata)
        if not (diff[0] == "remove_table" and diff[1].name == "alembic_version")
    ]


@pytest.mark.parametrize(
    "metadata",
    [identity, intake, assignment, followup, projection],
    ids=lambda m: str(m.schema),
)
async def test_the_migrated_schema_matches_the_code(database_url: str, metadata: MetaData) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences, metadata)
    finally:
        await engine.dispose()
    assert differences == []
