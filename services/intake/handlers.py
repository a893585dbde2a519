"""Intake's use cases: accept a report, in one transaction with its outbox event."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from services.intake.domain import ReportIssue, decide_report
from services.intake.store import plumbing, reporter_contacts, reports
from shared.envelope import wrap
from shared.ids import new_id
from shared.outbox import add_events
from shared.runtime import Runtime


@dataclass(frozen=True)
class Accepted:
    issue_id: str
    event_id: str
    created: bool


class IdempotencyKeyReused(Exception):
    """The same Idempotency-Key came with a different request body."""


async def report_issue(
    rt: Runtime,
    command: ReportIssue,
    *,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    correlation_id: str | None = None,
) -> Accepted:
    """Accept a matter; a retried request with the same Idempotency-Key gets the same issue."""
    if idempotency_key and (
        earlier := await _by_key(rt, command.source, idempotency_key, request_hash)
    ):
        return earlier
    now = rt.clock()
    issue_id = new_id()
    reporter_ref = f"rpt_{new_id()}" if command.has_reporter else None
    envelope = wrap(
        decide_report(command, reporter_ref),
        issue_id=issue_id,
        service=rt.name,
        actor=command.actor,
        time=now,
        correlation_id=correlation_id,
    )
    try:
        async with rt.sessions() as session, session.begin():
            if reporter_ref:
                await session.execute(
                    insert(reporter_contacts).values(
                        reporter_ref=reporter_ref,
                        name=command.reporter_name,
                        phone=command.reporter_phone,
                        created_at=now,
                    )
                )
            await session.execute(
                insert(reports).values(
                    issue_id=issue_id,
                    event_id=envelope.id,
                    **envelope.data,
                    received_at=now,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                )
            )
            await add_events(session, plumbing.outbox, rt.settings.subject_prefix, [envelope])
    except IntegrityError:
        # A concurrent request with the same key won the race: answer as it did.
        if idempotency_key and (
            earlier := await _by_key(rt, command.source, idempotency_key, request_hash)
        ):
            return earlier
        raise
    rt.relay.notify()
    return Accepted(issue_id=issue_id, event_id=envelope.id, created=True)


async def _by_key(rt: Runtime, source: str, key: str, request_hash: str | None) -> Accepted | None:
    async with rt.sessions() as session:
        row = (
            await session.execute(
                select(reports.c.issue_id, reports.c.event_id, reports.c.request_hash).where(
                    reports.c.source == source, reports.c.idempotency_key == key
                )
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body"
        )
    return Accepted(issue_id=row.issue_id, event_id=row.event_id, created=False)
