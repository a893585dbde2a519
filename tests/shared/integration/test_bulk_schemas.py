"""The bulk statements (raw asyncpg) read and write where a schema_translate_map points, on
a real PostgreSQL: a rebuild's read model code must never touch the live tables."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, Table, Text, text
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.persistence.bulk import executemany, fetch, plain_insert_sql, select_sql
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.settings import Settings

_TABLE = Table("t", MetaData(schema="live"), Column("k", Text, primary_key=True), Column("v", Text))


async def test_reads_and_writes_go_to_the_translated_schema(settings: Settings) -> None:
    engine = make_engine(settings.database_url, settings)
    try:
        async with engine.begin() as conn:
            for schema in ("live", "fresh"):
                await conn.execute(text(f"create schema {schema}"))
                await conn.execute(text(f"create table {schema}.t (k text primary key, v text)"))
            await conn.execute(text("insert into live.t values ('a', 'live')"))
        translated = engine.execution_options(schema_translate_map={"live": "fresh"})
        async with AsyncSession(translated) as session:
            await executemany(session, plain_insert_sql(_TABLE, ["k", "v"]), [("a", "fresh")])
            rows = await fetch(session, select_sql(_TABLE, ["k", "v"], "k = $1"), "a")
            await session.commit()
        async with engine.connect() as conn:
            live = (await conn.execute(text("select v from live.t"))).scalars().all()
    finally:
        await engine.dispose()

    assert [tuple(r) for r in rows] == [("a", "fresh")]
    assert live == ["live"]  # untouched
