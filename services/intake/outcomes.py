"""What became of each ingress message, as published on ``<outcomes prefix>.<source>`` and
kept in ``intake.ingress_outcomes`` for reading over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.handlers import Accepted
from services.intake.ingress import Problem
from services.intake.store import ingress_outcomes


class OutcomeError(BaseModel):
    code: str
    field: str | None = None
    message: str


class IngressOutcome(BaseModel):
    """The outcome of one ingress message: accepted (the matter it is on) or not (why).
    ``ingress_id`` is the CloudEvent id (null when the message had none that could be read)."""

    model_config = ConfigDict(extra="forbid")

    ingress_id: str | None
    source: str
    accepted: bool
    issue_id: str | None = None
    report_id: str | None = None
    event_id: str | None = None
    created: bool | None = None  # false: a repeat of an accepted message, same answer
    duplicate_of: str | None = None  # merged into a matter already on the list
    similarity: float | None = None
    external_ref: str | None = None
    errors: list[OutcomeError] | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def accepted_outcome(
    ingress_id: str, source: str, accepted: Accepted, external_ref: str | None
) -> IngressOutcome:
    return IngressOutcome(
        ingress_id=ingress_id,
        source=source,
        accepted=True,
        issue_id=accepted.issue_id,
        report_id=accepted.report_id,
        event_id=accepted.event_id,
        created=accepted.created,
        duplicate_of=accepted.duplicate_of,
        similarity=accepted.similarity,
        external_ref=external_ref,
    )


def rejected_outcome(
    ingress_id: str | None, source: str, problems: tuple[Problem, ...] | list[Problem]
) -> IngressOutcome:
    errors = [OutcomeError(code=p.code, field=p.field, message=p.message) for p in problems]
    return IngressOutcome(ingress_id=ingress_id, source=source, accepted=False, errors=errors)


async def keep(session: AsyncSession, outcomes: list[IngressOutcome]) -> None:
    """Store outcomes by (source, ingress id); an accepted one is never replaced."""
    rows = [
        {
            "source": o.source,
            "ingress_id": o.ingress_id,
            "accepted": o.accepted,
            "outcome": o.model_dump(mode="json", exclude_none=True),
        }
        for o in outcomes
        if o.ingress_id is not None
    ]
    if not rows:
        return
    t = ingress_outcomes
    statement = insert(t)
    statement = statement.on_conflict_do_update(
        index_elements=[t.c.source, t.c.ingress_id],
        set_={
            "accepted": statement.excluded.accepted,
            "outcome": statement.excluded.outcome,
            "updated_at": statement.excluded.updated_at,
        },
        where=t.c.accepted.is_(False),
    )
    await session.execute(statement, rows)


async def find(session: AsyncSession, source: str, ingress_id: str) -> dict[str, Any] | None:
    t = ingress_outcomes
    query = select(t.c.outcome).where(t.c.source == source, t.c.ingress_id == ingress_id)
    outcome: dict[str, Any] | None = await session.scalar(query)
    return outcome


async def prune(session: AsyncSession, before: datetime) -> int:
    """Forget outcomes last updated before ``before`` (the outcomes stream's own age), in
    the caller's transaction; returns how many."""
    t = ingress_outcomes
    result = await session.execute(delete(t).where(t.c.updated_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
