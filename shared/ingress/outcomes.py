"""What became of each ingress message: published on ``<outcomes prefix>.<source>`` and
kept in the consuming service's ``ingress_outcomes`` table for reading over HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, Column, DateTime, MetaData, Table, Text, delete, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.ingress.cloudevents import Problem


def outcomes_table(metadata: MetaData) -> Table:
    """A service's table of ingress outcomes, by (source, CloudEvent id)."""
    return Table(
        "ingress_outcomes",
        metadata,
        Column("source", Text, primary_key=True),
        Column("ingress_id", Text, primary_key=True),
        Column("accepted", Boolean, nullable=False),
        Column("outcome", JSONB, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class OutcomeError(BaseModel):
    code: str
    field: str | None = None
    message: str


class IngressOutcome(BaseModel):
    """The outcome of one ingress message: accepted (the matter it is on, the event it
    made) or not (why). ``ingress_id`` is the CloudEvent id; for a message whose id cannot
    be read, its ``Nats-Msg-Id`` or its place in the stream (``cloudevents.outcome_id``)."""

    model_config = ConfigDict(extra="forbid")

    ingress_id: str
    source: str
    accepted: bool
    issue_id: str | None = None
    event_id: str | None = None
    external_ref: str | None = None
    errors: list[OutcomeError] | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def rejected_outcome(ingress_id: str, source: str, problems: Sequence[Problem]) -> IngressOutcome:
    errors = [OutcomeError(code=p.code, field=p.field, message=p.message) for p in problems]
    return IngressOutcome(ingress_id=ingress_id, source=source, accepted=False, errors=errors)


async def keep(session: AsyncSession, table: Table, outcomes: Sequence[IngressOutcome]) -> None:
    """Store outcomes by (source, ingress id); an accepted one is never replaced."""
    rows = [
        {
            "source": o.source,
            "ingress_id": o.ingress_id,
            "accepted": o.accepted,
            "outcome": o.model_dump(mode="json", exclude_none=True),
        }
        for o in outcomes
    ]
    if not rows:
        return
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.source, table.c.ingress_id],
        set_={
            "accepted": statement.excluded.accepted,
            "outcome": statement.excluded.outcome,
            "updated_at": statement.excluded.updated_at,
        },
        where=table.c.accepted.is_(False),
    )
    await session.execute(statement, rows)


async def find(
    session: AsyncSession, table: Table, source: str, ingress_id: str
) -> dict[str, Any] | None:
    query = select(table.c.outcome).where(
        table.c.source == source, table.c.ingress_id == ingress_id
    )
    outcome: dict[str, Any] | None = await session.scalar(query)
    return outcome


async def prune(session: AsyncSession, table: Table, before: datetime) -> int:
    """Forget outcomes last updated before ``before`` (the outcomes stream's own age), in
    the caller's transaction; returns how many."""
    result = await session.execute(delete(table).where(table.c.updated_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
