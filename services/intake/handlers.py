"""Intake's use cases: accept a report, in one transaction with its outbox event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import IntegrityError

from services.intake.domain import ReportIssue, decide_report
from shared.events import IssueReported
from shared.ids import new_id
from shared.uow import UnitOfWork, UowFactory


@dataclass(frozen=True)
class Accepted:
    issue_id: str
    event_id: str
    created: bool


@dataclass(frozen=True)
class Earlier:
    """A report accepted before under an Idempotency-Key."""

    issue_id: str
    event_id: str
    request_hash: str | None


class IdempotencyKeyReused(Exception):
    """The same Idempotency-Key came with a different request body."""


class Reports(Protocol):
    """Accepted reports and, apart from them, the reporters' contact details."""

    async def by_key(self, source: str, key: str) -> Earlier | None:
        """The report a channel (``source``) sent earlier under this Idempotency-Key."""
        ...

    async def add(
        self,
        issue_id: str,
        event_id: str,
        report: IssueReported,
        *,
        received_at: datetime,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> None: ...

    async def add_contact(
        self, reporter_ref: str, name: str | None, phone: str | None, created_at: datetime
    ) -> None: ...


async def report_issue(
    units: UowFactory[Reports],
    command: ReportIssue,
    *,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    correlation_id: str | None = None,
) -> Accepted:
    """Accept a matter; a retried request with the same Idempotency-Key gets the same issue."""
    try:
        async with units() as uow:
            if idempotency_key and (
                earlier := await _earlier(uow, command.source, idempotency_key, request_hash)
            ):
                return earlier
            accepted = await _accept(uow, command, idempotency_key, request_hash, correlation_id)
            await uow.commit()
            return accepted
    except IntegrityError:
        # A concurrent request with the same key won the race: answer as it did.
        if idempotency_key:
            async with units() as uow:
                if earlier := await _earlier(uow, command.source, idempotency_key, request_hash):
                    return earlier
        raise


async def _accept(
    uow: UnitOfWork[Reports],
    command: ReportIssue,
    key: str | None,
    request_hash: str | None,
    correlation_id: str | None,
) -> Accepted:
    issue_id = new_id()
    reporter_ref = f"rpt_{new_id()}" if command.has_reporter else None
    event = decide_report(command, reporter_ref)
    envelope = uow.record(
        event, issue_id=issue_id, actor=command.actor, correlation_id=correlation_id
    )
    if reporter_ref:
        await uow.store.add_contact(
            reporter_ref, command.reporter_name, command.reporter_phone, uow.now
        )
    await uow.store.add(
        issue_id,
        envelope.id,
        event,
        received_at=uow.now,
        idempotency_key=key,
        request_hash=request_hash,
    )
    return Accepted(issue_id=issue_id, event_id=envelope.id, created=True)


async def _earlier(
    uow: UnitOfWork[Reports], source: str, key: str, request_hash: str | None
) -> Accepted | None:
    earlier = await uow.store.by_key(source, key)
    if earlier is None:
        return None
    if earlier.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body"
        )
    return Accepted(issue_id=earlier.issue_id, event_id=earlier.event_id, created=False)
