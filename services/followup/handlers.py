"""Followup's use cases: track assignments, accept resolutions and look-back visits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from services.followup.domain import (
    Case,
    RecordLookback,
    ResolveIssue,
    decide_lookback,
    decide_resolution,
    evolve,
)
from services.followup.store import cases
from shared.clock import local_date
from shared.consumer import Delivery
from shared.envelope import decode, wrap
from shared.events import Event
from shared.outbox import add_events
from shared.runtime import Runtime
from shared.state import load_state, save_state


@dataclass(frozen=True)
class Recorded:
    event_id: str
    case: Case


async def apply_event(rt: Runtime, session: AsyncSession, delivery: Delivery) -> None:
    """Follow the matter's state from the events other services publish."""
    event = decode(delivery.envelope)
    if event is None:
        return
    issue_id = delivery.envelope.subject
    case = await load_state(session, cases, issue_id, Case)
    new = evolve(case, event, delivery.envelope.id, delivery.envelope.correlationid)
    if new is not None and new != case:
        await save_state(session, cases, issue_id, new, rt.clock())


async def load_case(rt: Runtime, issue_id: str) -> Case | None:
    async with rt.sessions() as session:
        return await load_state(session, cases, issue_id, Case, lock=False)


async def resolve_issue(rt: Runtime, issue_id: str, command: ResolveIssue) -> Recorded:
    """The assigned unit reports the matter solved (cancellation)."""
    return await _decide_and_record(
        rt,
        issue_id,
        command.resolved_by or command.unit,
        lambda case, today: decide_resolution(case, command, today, rt.calendar),
    )


async def record_lookback(rt: Runtime, issue_id: str, command: RecordLookback) -> Recorded:
    """Line staff record the look-back visit: passed closes the loop, failed reopens it."""
    return await _decide_and_record(
        rt, issue_id, command.visitor, lambda case, today: decide_lookback(case, command, today)
    )


async def _decide_and_record(
    rt: Runtime, issue_id: str, actor: str, decide: Callable[[Case | None, date], Event]
) -> Recorded:
    """Load and lock the case, decide, then save the new case and its event in one commit."""
    now = rt.clock()
    async with rt.sessions() as session, session.begin():
        case = await load_state(session, cases, issue_id, Case)
        event = decide(case, local_date(now, rt.settings.timezone))
        assert case is not None  # deciding on an unknown matter raises UnknownIssue
        envelope = wrap(
            event,
            issue_id=issue_id,
            service=rt.name,
            actor=actor,
            time=now,
            correlation_id=case.correlation_id,
            causation_id=case.last_event_id,
        )
        new = evolve(case, event, envelope.id, case.correlation_id)
        assert new is not None
        await save_state(session, cases, issue_id, new, now)
        await add_events(session, rt.plumbing.outbox, rt.settings.subject_prefix, [envelope])
    rt.relay.notify()
    return Recorded(event_id=envelope.id, case=new)
