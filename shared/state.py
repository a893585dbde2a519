"""One matter's state kept as a dataclass in a table keyed by ``issue_id``.

The statements are built once per table, so SQLAlchemy compiles each a single time.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

State = TypeVar("State", bound="DataclassInstance")


class StateTable(Generic[State]):
    """Load (optionally locked) and upsert the state rows of one table."""

    def __init__(self, table: Table, cls: type[State]) -> None:
        self._cls = cls
        self._names = [f.name for f in fields(cls)]
        key = table.c.issue_id == bindparam("issue_id")
        self._select = select(table).where(key)
        self._select_locked = self._select.with_for_update()
        stmt = insert(table)
        self._upsert = stmt.on_conflict_do_update(
            index_elements=[table.c.issue_id],
            set_={c.name: stmt.excluded[c.name] for c in table.c if c.name != "issue_id"},
        )

    async def load(
        self, session: AsyncSession, issue_id: str, *, lock: bool = True
    ) -> State | None:
        """The state of one matter, locked for this transaction unless ``lock`` is false."""
        row = await self.load_row(session, issue_id, lock=lock)
        return None if row is None else self.state(row)

    async def load_row(
        self, session: AsyncSession, issue_id: str, *, lock: bool = True
    ) -> dict[str, Any] | None:
        """The whole row of one matter (state and the columns beside it)."""
        query = self._select_locked if lock else self._select
        row = (await session.execute(query, {"issue_id": issue_id})).first()
        return None if row is None else row._asdict()

    def state(self, row: dict[str, Any]) -> State:
        """The state held in a row."""
        return self._cls(**{name: row[name] for name in self._names})

    async def save(
        self, session: AsyncSession, issue_id: str, state: State, now: datetime, **extra: Any
    ) -> None:
        """Insert or replace the state of one matter (``extra``: columns beside the state)."""
        values = {**asdict(state), **extra, "issue_id": issue_id, "updated_at": now}
        await session.execute(self._upsert, values)
