"""Load and save one matter's state, kept as a dataclass in a table keyed by ``issue_id``."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

State = TypeVar("State", bound="DataclassInstance")


async def load_state(
    session: AsyncSession, table: Table, issue_id: str, cls: type[State], *, lock: bool = True
) -> State | None:
    """The state of one matter, locked for this transaction unless ``lock`` is false."""
    query = select(table).where(table.c.issue_id == issue_id)
    row = (await session.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        return None
    values = row._asdict()
    return cls(**{f.name: values[f.name] for f in fields(cls)})


async def save_state(
    session: AsyncSession, table: Table, issue_id: str, state: DataclassInstance, now: datetime
) -> None:
    """Insert or replace the state of one matter."""
    values = {**asdict(state), "issue_id": issue_id, "updated_at": now}
    stmt = insert(table).values(values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[table.c.issue_id], set_=stmt.excluded)
    )
