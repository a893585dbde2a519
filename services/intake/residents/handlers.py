"""Residents' use cases: invite supervisors and record their checks; answer every reporter
of a matter when it is resolved and when it is closed (durably, through a notifier); take
their feedback, and flag the matter for a re-visit when they are dissatisfied."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn, Protocol

from minqing.services.intake.domain import mask_phone, reopening_notes
from minqing.services.intake.residents.domain import (
    FEEDBACK_TERMS,
    Answer,
    FeedbackAlreadyGiven,
    FeedbackTerms,
    Matter,
    Reply,
    Stage,
    SupervisionKind,
    answer_after_lookback,
    check_supervisable,
    decide_feedback,
    decide_supervision,
    next_attempt,
    reply_text,
    with_link,
)
from minqing.services.intake.residents.notifier import Message, NotDelivered, Notifier
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import (
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueReporterReplied,
    IssueResolved,
    IssueRevisitRecorded,
    IssueSupervisorInvited,
)
from minqing.shared.domain.ids import new_id
from minqing.shared.messaging.dispatch import Handlers
from minqing.shared.persistence.races import first_wins
from minqing.shared.persistence.uow import UnitOfWork, UowFactory

log = logging.getLogger("minqing.intake.replies")


@dataclass(frozen=True)
class NewReply:
    """A reply queued for sending: stored in the same transaction as the event it answers."""

    reply_id: str
    issue_id: str
    reporter_ref: str
    stage: Stage
    text: str
    token: str
    cause_event_id: str
    correlation_id: str


@dataclass(frozen=True)
class DueReply:
    """A reply claimed for sending, with the reporter's contact (intake's own tables)."""

    reply_id: str
    issue_id: str
    reporter_ref: str
    stage: Stage
    text: str
    token: str
    attempts: int
    cause_event_id: str
    correlation_id: str
    name: str | None
    phone: str | None


@dataclass(frozen=True)
class Supervisor:
    supervisor_ref: str
    issue_id: str
    phone_masked: str | None
    invited_by: str
    invited_at: datetime


class Residents(Protocol):
    """Supervisors, replies and feedback in intake's own tables."""

    async def matter(self, issue_id: str) -> Matter | None: ...

    async def set_resolved(self, issue_id: str, resolved: bool, at: datetime) -> None: ...

    async def answer(self, issue_id: str) -> Answer | None:
        """What residents are told of the matter, once it was resolved."""
        ...

    async def set_answer(self, issue_id: str, answer: Answer, at: datetime) -> None: ...

    async def reporters(self, issue_id: str) -> list[str]:
        """Every reporter (reference) of a matter: its first report and its duplicates."""
        ...

    async def add_replies(self, replies: list[NewReply], at: datetime) -> None:
        """Queue replies; one already queued for the same event and reporter is kept."""
        ...

    async def claim_due(self, now: datetime, until: datetime, limit: int) -> list[DueReply]:
        """Replies due by ``now`` that no one holds, held by the caller until ``until``."""
        ...

    async def mark_sent(self, reply_id: str, channel: str, attempts: int, at: datetime) -> bool:
        """Mark a pending reply sent (its token kept only as a hash); false if it was not
        pending."""
        ...

    async def mark_failed(
        self, reply_id: str, attempts: int, error: str, retry_at: datetime
    ) -> None: ...

    async def reply_by_token(self, token_hash: str, *, lock: bool) -> Reply | None: ...

    async def add_feedback(
        self, reply: Reply, score: int, comment: str, revisit: bool, at: datetime
    ) -> None: ...

    async def add_supervisor(
        self, supervisor: Supervisor, name: str, phone: str | None
    ) -> None: ...

    async def supervisor_issue(self, supervisor_ref: str) -> str | None: ...

    async def add_supervision(
        self,
        event_id: str,
        issue_id: str,
        supervisor_ref: str,
        kind: str,
        satisfied: bool,
        notes: str,
        at: datetime,
    ) -> None: ...


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ------------------------------------------------------------------ queueing replies (consumer)


async def _queue(stage: Stage, detail: str, cause: Envelope, uow: UnitOfWork[Residents]) -> None:
    issue_id = cause.subject
    matter = await uow.store.matter(issue_id)
    title = matter.title if matter else "您的事项"
    text = reply_text(stage, title, detail)
    replies = [
        NewReply(
            reply_id=new_id(),
            issue_id=issue_id,
            reporter_ref=ref,
            stage=stage,
            text=text,
            token=secrets.token_urlsafe(24),
            cause_event_id=cause.id,
            correlation_id=cause.correlationid,
        )
        for ref in await uow.store.reporters(issue_id)
    ]
    await uow.store.add_replies(replies, uow.now)


async def on_resolved(
    event: IssueResolved, cause: Envelope, uow: UnitOfWork[Residents], deps: None
) -> None:
    await uow.store.set_resolved(cause.subject, True, cause.time)
    answer = Answer("resolved", event.summary, event.lookback_due)
    await uow.store.set_answer(cause.subject, answer, cause.time)
    await _queue("resolved", event.summary, cause, uow)


async def on_lookback_passed(
    event: IssueLookbackPassed, cause: Envelope, uow: UnitOfWork[Residents], deps: None
) -> None:
    answer = answer_after_lookback(await uow.store.answer(cause.subject), True, event.notes)
    await uow.store.set_answer(cause.subject, answer, cause.time)
    await _queue("closed", event.notes, cause, uow)


async def on_visit(
    event: IssueLookbackFailed | IssueRevisitRecorded,
    cause: Envelope,
    uow: UnitOfWork[Residents],
    deps: None,
) -> None:
    """A failed look-back or a failed re-visit reopens the matter: the follow page says so,
    with what the visitor found; a passed re-visit changes nothing."""
    notes = reopening_notes(event)
    if notes is None:
        return
    await uow.store.set_resolved(cause.subject, False, cause.time)
    answer = answer_after_lookback(await uow.store.answer(cause.subject), False, notes)
    await uow.store.set_answer(cause.subject, answer, cause.time)


REPLY_HANDLERS: Handlers = {
    IssueResolved: on_resolved,
    IssueLookbackPassed: on_lookback_passed,
    IssueLookbackFailed: on_visit,
    IssueRevisitRecorded: on_visit,
}


# ------------------------------------------------------------------ sending replies (worker)


@dataclass(frozen=True)
class ReplyPolicy:
    """How replies are sent: how many at a time, how long a claim holds, the retry pace,
    and where feedback links point (none when unset)."""

    batch_size: int = 50
    hold_seconds: float = 60.0
    retry_first_seconds: float = 2.0
    retry_most_seconds: float = 600.0
    feedback_base_url: str | None = None

    def feedback_url(self, token: str) -> str | None:
        if self.feedback_base_url is None:
            return None
        # The feedback page (it posts to /api/v1/feedback/<token>); links sent before it
        # existed, to /api/v1/feedback/<token>, bring a browser there too.
        return f"{self.feedback_base_url.rstrip('/')}/feedback/{token}"


async def send_due_replies(
    units: UowFactory[Residents], notifier: Notifier, policy: ReplyPolicy
) -> tuple[int, int]:
    """Send the replies that are due; each delivered one is marked sent and recorded
    (``issue.reporter_replied``) in one transaction; each failure is tried again later.
    Returns (sent, failed)."""
    async with units() as uow:
        hold = next_attempt(uow.now, 1, policy.hold_seconds, policy.hold_seconds)
        due = await uow.store.claim_due(uow.now, hold, policy.batch_size)
        await uow.commit()
    sent = 0
    for reply in due:
        sent += await _send(units, notifier, policy, reply)
    return sent, len(due) - sent


async def _send(
    units: UowFactory[Residents], notifier: Notifier, policy: ReplyPolicy, reply: DueReply
) -> bool:
    """One reply sent and recorded, or marked to be tried again; whether it was sent."""
    url = policy.feedback_url(reply.token)
    message = Message(
        reply_id=reply.reply_id,
        issue_id=reply.issue_id,
        stage=reply.stage,
        name=reply.name,
        phone=reply.phone,
        text=with_link(reply.text, url),
        feedback_url=url,
    )
    attempts = reply.attempts + 1
    try:
        await notifier.send(message)
    except NotDelivered as exc:
        log.warning("reply %s not delivered (round %d): %s", reply.reply_id, attempts, exc)
        async with units() as uow:
            retry_at = next_attempt(
                uow.now, attempts, policy.retry_first_seconds, policy.retry_most_seconds
            )
            await uow.store.mark_failed(reply.reply_id, attempts, str(exc), retry_at)
            await uow.commit()
        return False
    async with units() as uow:
        if await uow.store.mark_sent(reply.reply_id, notifier.name, attempts, uow.now):
            replied = IssueReporterReplied(
                reply_id=reply.reply_id,
                reporter_ref=reply.reporter_ref,
                stage=reply.stage,
                channel=notifier.name,
                attempts=attempts,
                feedback_link=url is not None,
            )
            uow.record(
                replied,
                issue_id=reply.issue_id,
                actor="service:intake",
                correlation_id=reply.correlation_id,
                causation_id=reply.cause_event_id,
            )
        await uow.commit()
    return True


# ------------------------------------------------------------------ feedback (HTTP)


@dataclass(frozen=True)
class FeedbackTaken:
    issue_id: str
    event_id: str
    revisit_flagged: bool


async def give_feedback(
    units: UowFactory[Residents],
    token: str,
    score: int,
    comment: str,
    terms: FeedbackTerms = FEEDBACK_TERMS,
) -> FeedbackTaken:
    """A reporter answers one reply (the token in its link) with a score and a comment,
    within ``terms.days`` of the reply being sent (by the unit of work's clock)."""

    async def give() -> FeedbackTaken:
        return await _give_feedback(units, token, score, comment, terms)

    async def answered() -> NoReturn:  # the same reply answered twice at once: one wins
        raise FeedbackAlreadyGiven("this reply was already answered")

    return await first_wins(give, constraints=["feedback_pkey"], then=answered)


async def _give_feedback(
    units: UowFactory[Residents], token: str, score: int, comment: str, terms: FeedbackTerms
) -> FeedbackTaken:
    async with units() as uow:
        reply = await uow.store.reply_by_token(token_hash(token), lock=True)
        feedback, revisit = decide_feedback(reply, score, comment, uow.now, terms)
        assert reply is not None
        # the reporter, who alone holds the reply's token
        resident = f"resident:{reply.reporter_ref}"
        envelope = uow.record(feedback, issue_id=reply.issue_id, actor=resident)
        if revisit is not None:
            uow.record(revisit, issue_id=reply.issue_id, actor=resident, cause=envelope)
        await uow.store.add_feedback(reply, score, comment, revisit is not None, uow.now)
        await uow.commit()
    return FeedbackTaken(reply.issue_id, envelope.id, revisit is not None)


# ------------------------------------------------------------------ supervision (HTTP)


async def invite_supervisor(
    units: UowFactory[Residents],
    issue_id: str,
    *,
    name: str,
    phone: str | None,
    invited_by: str,
    groups: frozenset[str],
    on_behalf_of: str | None = None,
) -> tuple[str, str]:
    """Invite a resident to supervise a matter; returns (supervisor_ref, event_id)."""
    async with units() as uow:
        check_supervisable(await uow.store.matter(issue_id), groups)
        supervisor = Supervisor(f"sup_{new_id()}", issue_id, mask_phone(phone), invited_by, uow.now)
        envelope = uow.record(
            IssueSupervisorInvited(
                supervisor_ref=supervisor.supervisor_ref,
                supervisor_phone_masked=supervisor.phone_masked,
                invited_by=invited_by,
                on_behalf_of=on_behalf_of,
            ),
            issue_id=issue_id,
            actor=invited_by,
        )
        await uow.store.add_supervisor(supervisor, name, phone)
        await uow.commit()
    return supervisor.supervisor_ref, envelope.id


async def record_supervision(
    units: UowFactory[Residents],
    issue_id: str,
    *,
    supervisor_ref: str,
    kind: SupervisionKind,
    satisfied: bool,
    notes: str,
    recorded_by: str | None = None,
    groups: frozenset[str],
) -> str:
    """A supervisor's check or sign-off; returns the event id."""
    async with units() as uow:
        event = decide_supervision(
            await uow.store.matter(issue_id),
            groups,
            await uow.store.supervisor_issue(supervisor_ref),
            supervisor_ref,
            kind,
            satisfied,
            notes,
        )
        # the staff member who records what the resident supervisor saw (the resident's
        # reference is in the event); without one, the resident themselves
        actor = recorded_by or f"resident:{supervisor_ref}"
        envelope = uow.record(event, issue_id=issue_id, actor=actor)
        await uow.store.add_supervision(
            envelope.id, issue_id, supervisor_ref, kind, satisfied, notes, uow.now
        )
        await uow.commit()
    return envelope.id
