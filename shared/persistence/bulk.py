"""Bulk writes straight on the session's asyncpg connection, inside its transaction.

SQLAlchemy's executemany processes every parameter of every row in Python before asyncpg
sees it; on the consumers' hot path (hundreds of rows per batch) that was a tenth of the
projection's time under py-spy. These statements are plain SQL text built once from the
table, so asyncpg prepares each once per connection.

They honour the connection's ``schema_translate_map`` as Core statements do (a rebuild
writes a read model's fresh tables in another schema with the model's own code): every
schema name that qualifies a table in the text (``projection.issues``) is rendered
through the map, once per statement text and map.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


def insert_sql(table: Table, key: str, *, update: bool, keep: Sequence[str] = ()) -> str:
    """``INSERT`` of every column in table order; on a key conflict update (all but the
    ``keep`` columns) or do nothing."""
    names = column_names(table, key)
    columns = ", ".join(f'"{n}"' for n in names)
    values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    if update:
        sets = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n != key and n not in keep)
        conflict = f"do update set {sets}"
    else:
        conflict = "do nothing"
    target = f"insert into {table.fullname} ({columns}) values ({values})"
    return f"{target} on conflict ({key}) {conflict}"


def plain_insert_sql(table: Table, names: Sequence[str]) -> str:
    """``INSERT`` of the named columns, parameters ``$1...`` in that order."""
    columns = ", ".join(f'"{n}"' for n in names)
    values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return f"insert into {table.fullname} ({columns}) values ({values})"


def column_names(table: Table, key: str) -> list[str]:
    """The columns ``insert_sql`` writes, in its order (server-defaulted ones left out)."""
    return [c.name for c in table.c if not (c.server_default is not None and c.name != key)]


def translate_schemas(sql: str, schemas: Mapping[str | None, str | None] | None) -> str:
    """``sql`` with every schema name that qualifies a table (``schema.table``, unquoted,
    as ``Table.fullname`` writes it) replaced as ``schemas`` (a ``schema_translate_map``)
    says; a ``None`` key (the default schema) does not appear in these texts."""
    if not schemas:
        return sql
    return _translate(sql, tuple(sorted((k, v) for k, v in schemas.items() if k and v)))


@lru_cache(maxsize=256)
def _translate(sql: str, pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return sql
    names = dict(pairs)
    pattern = re.compile(
        r'(?<![\w".$])(' + "|".join(re.escape(k) for k in names) + r')\.(?=[A-Za-z_"])'
    )
    return pattern.sub(lambda m: names[m.group(1)] + ".", sql)


async def _driver(session: AsyncSession, sql: str) -> tuple[Any, str]:
    """The session's asyncpg connection, and ``sql`` for its schema translation."""
    connection: AsyncConnection = await session.connection()
    sync = connection.sync_connection
    schemas = sync.get_execution_options().get("schema_translate_map") if sync else None
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None, "a checked-out connection has its asyncpg connection"
    return driver, translate_schemas(sql, schemas)


async def execute(session: AsyncSession, sql: str, *args: Any) -> None:
    """Run ``sql`` once on the session's own connection and transaction."""
    driver, sql = await _driver(session, sql)
    await driver.execute(sql, *args)


async def executemany(session: AsyncSession, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` once per row on the session's own connection and transaction."""
    if not rows:
        return
    driver, sql = await _driver(session, sql)
    await driver.executemany(sql, rows)


async def fetch(session: AsyncSession, sql: str, *args: Any) -> list[Any]:
    """The rows (asyncpg records: by name or position) of ``sql`` on the session's own
    connection and transaction, without SQLAlchemy's result processing."""
    driver, sql = await _driver(session, sql)
    return list(await driver.fetch(sql, *args))


def select_sql(table: Table, names: Sequence[str], where: str) -> str:
    """``SELECT`` of the named columns of ``table`` with a condition in asyncpg's ``$n``."""
    columns = ", ".join(f'"{n}"' for n in names)
    return f"select {columns} from {table.fullname} where {where}"
