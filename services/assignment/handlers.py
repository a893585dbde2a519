"""Assignment's use cases: assign reported matters, re-assign after a failed look-back."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.assignment.domain import (
    Assignment,
    IssueNotAssigned,
    decide_initial,
    decide_reassignment,
    evolve,
)
from services.assignment.store import assignments
from shared.clock import local_date
from shared.consumer import Delivery, Rejected
from shared.envelope import decode, wrap
from shared.events import IssueAssigned, IssueLookbackFailed, IssueReported
from shared.outbox import add_events
from shared.reference import UnknownCode
from shared.runtime import Runtime
from shared.state import load_state, save_state

ACTOR = "assignment"


async def apply_event(rt: Runtime, session: AsyncSession, delivery: Delivery) -> None:
    """React to one event inside the batch transaction; other event types are ignored."""
    event = decode(delivery.envelope)
    if not isinstance(event, IssueReported | IssueLookbackFailed):
        return
    issue_id = delivery.envelope.subject
    current = await load_state(session, assignments, issue_id, Assignment)
    today = local_date(delivery.envelope.time, rt.settings.timezone)
    try:
        if isinstance(event, IssueReported):
            assigned = decide_initial(current, event, rt.reference.route, today, rt.calendar)
        else:
            assigned = decide_reassignment(current, event, rt.reference.route, today, rt.calendar)
    except (IssueNotAssigned, UnknownCode) as exc:
        raise Rejected(str(exc)) from exc
    if assigned is not None:
        await _record(rt, session, delivery, issue_id, assigned)


async def _record(
    rt: Runtime, session: AsyncSession, cause: Delivery, issue_id: str, assigned: IssueAssigned
) -> None:
    now = rt.clock()
    await save_state(session, assignments, issue_id, evolve(assigned), now)
    envelope = wrap(
        assigned, issue_id=issue_id, service=rt.name, actor=ACTOR, time=now, cause=cause.envelope
    )
    await add_events(session, rt.plumbing.outbox, rt.settings.subject_prefix, [envelope])
