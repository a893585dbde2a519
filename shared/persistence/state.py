"""One matter's state kept as a dataclass in a table keyed by ``issue_id``.

The statements are built once per table, so SQLAlchemy compiles each a single time. A
consumer's batch loads every matter it touches in one locked query (``preload``), works
on the rows in memory and writes the changed ones back in one executemany (``flush``):
two round trips per batch instead of two per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Table, Text, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.persistence.bulk import column_names, executemany, insert_sql
from minqing.shared.persistence.matter_locks import lock_matters

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

State = TypeVar("State", bound="DataclassInstance")
Row = dict[str, Any]


class StateTable(Generic[State]):
    """Load (optionally locked) and upsert the state rows of one table."""

    def __init__(self, table: Table, cls: type[State]) -> None:
        self._cls = cls
        self._space = table.schema or table.name
        self._names = [f.name for f in fields(cls)]
        one = select(table).where(table.c.issue_id == bindparam("issue_id"))
        self._select = one
        self._select_locked = one.with_for_update()
        many = table.c.issue_id == any_(bindparam("ids", type_=ARRAY(Text)))
        # Locked in key order, so two batches touching the same matters cannot deadlock.
        self._select_many_locked = (
            select(table).where(many).order_by(table.c.issue_id).with_for_update()
        )
        self._upsert = insert_sql(table, "issue_id", update=True)
        self._columns = column_names(table, "issue_id")

    async def load_row(
        self, session: AsyncSession, issue_id: str, *, lock: bool = True
    ) -> Row | None:
        """The whole row of one matter (state and the columns beside it); ``lock``: the
        matter's lock first (``matter_locks``: held whether or not the row exists yet)."""
        if lock:
            await lock_matters(session, self._space, [issue_id])
        query = self._select_locked if lock else self._select
        row = (await session.execute(query, {"issue_id": issue_id})).first()
        return None if row is None else row._asdict()

    async def load_rows(self, session: AsyncSession, issue_ids: Sequence[str]) -> dict[str, Row]:
        """The rows of several matters, row-locked. No matter locks here: a consumer batch
        reads them already holding its matters' locks (``BatchConsumer`` takes them), and a
        job reads rows that exist, which their row locks guard."""
        rows = await session.execute(self._select_many_locked, {"ids": list(issue_ids)})
        return {row.issue_id: row._asdict() for row in rows}

    def state(self, row: Row) -> State:
        """The state held in a row."""
        return self._cls(**{name: row[name] for name in self._names})

    def row(self, issue_id: str, state: State, now: datetime, **extra: Any) -> Row:
        """The row for a state (``extra``: columns beside the state)."""
        values = {name: getattr(state, name) for name in self._names}  # shallow, unlike asdict
        return {**values, **extra, "issue_id": issue_id, "updated_at": now}

    async def save_rows(self, session: AsyncSession, rows: Sequence[Row]) -> None:
        """Insert or replace rows, in one executemany."""
        await executemany(session, self._upsert, [tuple(r[c] for c in self._columns) for r in rows])


class StateCache(Generic[State]):
    """The rows of one transaction: loaded once, changed in memory, written at ``flush``."""

    def __init__(self, table: StateTable[State], session: AsyncSession, now: datetime) -> None:
        self._table = table
        self._session = session
        self._now = now
        self._rows: dict[str, Row | None] = {}
        self._dirty: dict[str, Row] = {}

    async def preload(self, issue_ids: Sequence[str]) -> None:
        """Load (and lock) the rows of these matters in one query."""
        wanted = [i for i in dict.fromkeys(issue_ids) if i not in self._rows]
        if wanted:
            found = await self._table.load_rows(self._session, wanted)
            for issue_id in wanted:
                self._rows[issue_id] = found.get(issue_id)

    async def get(self, issue_id: str, *, lock: bool = True) -> Row | None:
        if issue_id not in self._rows:
            self._rows[issue_id] = await self._table.load_row(self._session, issue_id, lock=lock)
        return self._rows[issue_id]

    def put(self, issue_id: str, state: State, **extra: Any) -> None:
        row = self._table.row(issue_id, state, self._now, **extra)
        self._rows[issue_id] = self._dirty[issue_id] = row

    async def flush(self) -> None:
        """Write the changed rows back."""
        await self._table.save_rows(self._session, list(self._dirty.values()))
        self._dirty.clear()
