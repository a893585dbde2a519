"""Intake's use cases: accept a report (or merge it into the matter it duplicates), split a
wrong merge back out, and keep each matter's status for the channels that report it back.

Every channel calls ``accept_report`` (through ``report_issue`` when it has no transaction
of its own), so idempotency, privacy and duplicate detection hold for all of them alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, TypeVar

from minqing.services.intake import status_notes
from minqing.services.intake.domain import (
    Extras,
    OpenMatter,
    ReportIssue,
    decide_duplicate,
    decide_report,
    find_duplicate,
    reopening_notes,
)
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import (
    IssueAssigned,
    IssueDuplicateReported,
    IssueDuplicateSplit,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueReported,
    IssueResolved,
    IssueRevisitRecorded,
)
from minqing.shared.contract.reference import active
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.policy import Reach
from minqing.shared.messaging.dispatch import Handlers
from minqing.shared.persistence.races import first_wins
from minqing.shared.persistence.uow import UnitOfWork, UowFactory

# The constraints a report's idempotency rests on: a caller's key, a sender's own ticket id.
REPORT_KEYS = ("reports_source_idempotency_key_key", "reports_source_external_ref_key")


@dataclass(frozen=True)
class Accepted:
    """What became of a report: the matter it is on, and whether this call created it."""

    issue_id: str
    event_id: str
    report_id: str
    created: bool
    duplicate_of: str | None = None  # set when it was merged into a matter already listed
    similarity: float | None = None


@dataclass(frozen=True)
class StoredReport:
    """One report as intake keeps it; ``issue_id`` is the matter it is on."""

    report_id: str
    issue_id: str
    event_id: str
    content: IssueReported
    received_at: datetime
    idempotency_key: str | None = None
    request_hash: str | None = None
    similarity: float | None = None  # set while it is merged into another's matter

    @property
    def is_duplicate(self) -> bool:
        return self.similarity is not None


@dataclass(frozen=True)
class MatterStatus:
    """Where a matter stands, as the channels report it back (Open311 ``status``)."""

    status: str  # open | closed
    notes: str
    unit: str | None = None
    deadline: date | None = None


class IdempotencyKeyReused(Exception):
    """The same Idempotency-Key came with a different request body."""


class NotADuplicate(Exception):
    """The report named is not merged into the matter named; nothing to split."""


class Reports(Protocol):
    """Reports, the matters they are on, and, apart from them, reporters' contact details."""

    async def by_key(self, source: str, key: str) -> StoredReport | None:
        """The report a channel (``source``) sent earlier under this idempotency key."""
        ...

    async def by_external_ref(self, source: str, external_ref: str) -> StoredReport | None:
        """The report a channel sent earlier under its own ticket id."""
        ...

    async def get(self, report_id: str) -> StoredReport | None: ...

    async def of_issue(self, issue_id: str) -> list[StoredReport]:
        """The reports a matter stands on, first received first."""
        ...

    async def open_matters(self, village: str, category: str) -> list[OpenMatter]:
        """Matters not closed in this village and category, newest first; holds a lock on
        the pair until the transaction ends, so two alike reports cannot both open one."""
        ...

    async def add(self, report: StoredReport) -> None: ...

    async def add_matter(self, issue_id: str, content: IssueReported, at: datetime) -> None: ...

    async def move(self, report_id: str, issue_id: str, event_id: str) -> None:
        """The report now stands on its own matter (a split)."""
        ...

    async def set_status(self, issue_id: str, status: MatterStatus, at: datetime) -> None: ...

    async def place(self, issue_id: str) -> tuple[str | None, str] | None:
        """The matter's unit (the last one it was assigned to, if any) and village."""
        ...

    async def add_contact(
        self, reporter_ref: str, name: str | None, phone: str | None, created_at: datetime
    ) -> None: ...


class RequestStore(Reports, Protocol):
    """Reports, and what an Open311 service request keeps beside its report."""

    async def add_request(
        self, report_id: str, key_id: str, extras: Extras, media_id: str | None
    ) -> None: ...

    async def add_media(
        self, media_id: str, report_id: str, content_type: str, content: bytes, at: datetime
    ) -> None: ...


S = TypeVar("S", bound=Reports)
R = TypeVar("R", bound=RequestStore)
# What a channel keeps beside a new report, written in the report's transaction.
Beside = Callable[[UnitOfWork[S], Accepted], Awaitable[None]]


@dataclass(frozen=True)
class ServiceRequest:
    """What an Open311 request adds to its report: the api key it came with, the fields
    intake keeps for the app (``extras``) and the photo (type, bytes), if any."""

    key_id: str
    extras: Extras
    photo: tuple[str, bytes] | None = None


@dataclass(frozen=True)
class Policy:
    """What intake decides with: when a report counts as a duplicate (0-100; above 100
    never)."""

    duplicate_threshold: float = 85.0


async def report_issue(
    units: UowFactory[S],
    command: ReportIssue,
    *,
    policy: Policy = Policy(),
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    correlation_id: str | None = None,
    beside: Beside[S] | None = None,
) -> Accepted:
    """Accept a matter in a transaction of its own; a retry gets the same answer, even one
    racing the first. ``beside`` keeps what the channel adds to a new report (an Open311
    request's extras and photo) in the same transaction."""

    async def accept() -> Accepted:
        async with units() as uow:
            accepted = await accept_report(
                uow,
                command,
                policy,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                correlation_id=correlation_id,
            )
            if accepted.created and beside is not None:
                await beside(uow, accepted)
            await uow.commit()
            return accepted

    async def as_the_winner_did() -> Accepted | None:
        async with units() as uow:
            return await _earlier(uow, command, idempotency_key, request_hash)

    return await first_wins(accept, constraints=REPORT_KEYS, then=as_the_winner_did)


async def report_service_request(
    units: UowFactory[R],
    command: ReportIssue,
    request: ServiceRequest,
    *,
    policy: Policy = Policy(),
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> Accepted:
    """An Open311 request: the report, the request's extras and its photo in one
    transaction, with the same idempotency and races as any report."""

    async def keep(uow: UnitOfWork[R], accepted: Accepted) -> None:
        media_id = new_id() if request.photo else None
        if request.photo and media_id:
            content_type, content = request.photo
            await uow.store.add_media(media_id, accepted.report_id, content_type, content, uow.now)
        await uow.store.add_request(accepted.report_id, request.key_id, request.extras, media_id)

    return await report_issue(
        units,
        command,
        policy=policy,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        beside=keep,
    )


async def accept_report(
    uow: UnitOfWork[S],
    command: ReportIssue,
    policy: Policy,
    *,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    correlation_id: str | None = None,
) -> Accepted:
    """Accept a matter inside the caller's unit of work (no commit): a new matter, or its
    reporter added to the open matter it duplicates, or the earlier answer to a retry."""
    if earlier := await _earlier(uow, command, idempotency_key, request_hash):
        return earlier
    report_id = new_id()
    reporter_ref = f"rpt_{new_id()}" if command.has_reporter else None
    content = decide_report(command, reporter_ref)
    candidates = await uow.store.open_matters(command.village, command.category)
    match = find_duplicate(command.title, candidates, policy.duplicate_threshold)
    # A new matter, unless it duplicates one still open.
    event: IssueReported | IssueDuplicateReported = content
    issue_id = report_id
    if match is not None:
        issue_id = match.issue_id
        event = decide_duplicate(command, report_id, reporter_ref, match)
    envelope = uow.record(
        event, issue_id=issue_id, actor=command.actor, correlation_id=correlation_id
    )
    if match is None:
        await uow.store.add_matter(issue_id, content, uow.now)
    if reporter_ref:
        await uow.store.add_contact(
            reporter_ref, command.reporter_name, command.reporter_phone, uow.now
        )
    stored = StoredReport(
        report_id=report_id,
        issue_id=issue_id,
        event_id=envelope.id,
        content=content,
        received_at=uow.now,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        similarity=None if match is None else match.similarity,
    )
    await uow.store.add(stored)
    return _accepted(stored, created=True)


async def _earlier(
    uow: UnitOfWork[S],
    command: ReportIssue,
    key: str | None,
    request_hash: str | None,
) -> Accepted | None:
    if key and (earlier := await uow.store.by_key(command.source, key)):
        if earlier.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body"
            )
        return _accepted(earlier)
    if command.external_ref and (
        earlier := await uow.store.by_external_ref(command.source, command.external_ref)
    ):
        return _accepted(earlier)
    return None


def _accepted(report: StoredReport, *, created: bool = False) -> Accepted:
    """The answer a report gives: the matter it is on, and the one it joined, if any."""
    return Accepted(
        issue_id=report.issue_id,
        event_id=report.event_id,
        report_id=report.report_id,
        created=created,
        duplicate_of=report.issue_id if report.is_duplicate else None,
        similarity=report.similarity,
    )


async def split_duplicate(
    units: UowFactory[Reports],
    issue_id: str,
    report_id: str,
    *,
    reason: str,
    actor: str,
    on_behalf_of: str | None = None,
) -> Accepted:
    """Undo a wrong duplicate match: the report becomes a matter of its own, and both
    matters' histories say so."""
    async with units() as uow:
        report = await uow.store.get(report_id)
        if report is None or report.issue_id != issue_id or not report.is_duplicate:
            raise NotADuplicate(f"report {report_id} is not merged into matter {issue_id}")
        new_issue_id = report.report_id
        uow.record(
            IssueDuplicateSplit(
                report_id=report_id,
                new_issue_id=new_issue_id,
                reason=reason,
                on_behalf_of=on_behalf_of,
            ),
            issue_id=issue_id,
            actor=actor,
        )
        content = report.content.model_copy(update={"split_from": issue_id})
        envelope = uow.record(content, issue_id=new_issue_id, actor=actor)
        await uow.store.add_matter(new_issue_id, content, uow.now)
        await uow.store.move(report_id, new_issue_id, envelope.id)
        await uow.commit()
    return Accepted(issue_id=new_issue_id, event_id=envelope.id, report_id=report_id, created=True)


async def reached(units: UowFactory[Reports], issue_id: str, reach: Reach) -> bool:
    """Whether the matter exists and the caller reaches it (its unit, its village)."""
    async with units() as uow:
        place = await uow.store.place(issue_id)
    return place is not None and reach(*place)


async def reports_of(units: UowFactory[Reports], issue_id: str) -> list[StoredReport]:
    """Who reported a matter, through which channels: the first report and its duplicates."""
    async with units() as uow:
        return await uow.store.of_issue(issue_id)


# ------------------------------------------------------- status, for reporting back to channels


async def on_assigned(
    event: IssueAssigned, cause: Envelope, uow: UnitOfWork[Reports], deps: None
) -> None:
    notes = status_notes.assigned(active(), event.unit, event.deadline, event.calendar)
    status = MatterStatus("open", notes, unit=event.unit, deadline=event.deadline)
    await uow.store.set_status(cause.subject, status, cause.time)


async def on_resolved(
    event: IssueResolved, cause: Envelope, uow: UnitOfWork[Reports], deps: None
) -> None:
    notes = status_notes.resolved(active(), event.unit, event.summary, event.lookback_due)
    status = MatterStatus("open", notes, unit=event.unit)
    await uow.store.set_status(cause.subject, status, cause.time)


async def on_lookback_passed(
    event: IssueLookbackPassed, cause: Envelope, uow: UnitOfWork[Reports], deps: None
) -> None:
    notes = status_notes.closed(event.notes)
    await uow.store.set_status(cause.subject, MatterStatus("closed", notes), cause.time)


async def on_visit(
    event: IssueLookbackFailed | IssueRevisitRecorded,
    cause: Envelope,
    uow: UnitOfWork[Reports],
    deps: None,
) -> None:
    """A failed look-back or a failed re-visit reopens the matter; a passed re-visit leaves
    it closed."""
    found = reopening_notes(event)
    if found is not None:
        notes = status_notes.reopened(found)
        await uow.store.set_status(cause.subject, MatterStatus("open", notes), cause.time)


HANDLERS: Handlers = {
    IssueAssigned: on_assigned,
    IssueResolved: on_resolved,
    IssueLookbackPassed: on_lookback_passed,
    IssueLookbackFailed: on_visit,
    IssueRevisitRecorded: on_visit,
}
