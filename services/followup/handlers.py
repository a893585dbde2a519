"""Followup's use cases: track assignments, accept resolutions and look-back visits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from services.followup.domain import (
    Case,
    RecordLookback,
    ResolveIssue,
    decide_deadline_checks,
    decide_lookback,
    decide_lookback_recompute,
    decide_resolution,
    evolve,
)
from services.followup.escalation import Ladder
from shared.calendar import WorkingCalendar
from shared.clock import local_date
from shared.dispatch import Handlers
from shared.envelope import Envelope
from shared.events import (
    Event,
    IssueAssigned,
    IssueDeadlineExtended,
    IssueDeadlineRecomputed,
    IssueReported,
)
from shared.uow import UnitOfWork, UowFactory

ACTOR = "followup"


@dataclass(frozen=True)
class Tracked:
    """A case and, beside it, the ids its next event is chained to."""

    case: Case
    last_event_id: str
    correlation_id: str


class Cases(Protocol):
    """What followup knows of each matter."""

    async def get(self, issue_id: str, *, lock: bool = True) -> Tracked | None: ...

    async def save(self, issue_id: str, tracked: Tracked) -> None: ...

    async def provisional(self) -> list[tuple[str, Tracked]]:
        """The cases whose look-back due date is provisional, locked until commit."""
        ...

    async def past_due(self, today: date) -> list[tuple[str, Tracked]]:
        """Cases waiting for a resolution or a look-back that was due before ``today``,
        locked until commit."""
        ...


@dataclass(frozen=True)
class Rules:
    """What followup decides with: the calendar, the town's time zone, the escalation
    ladder."""

    calendar: WorkingCalendar
    timezone: str
    ladder: Ladder


@dataclass(frozen=True)
class Recorded:
    event_id: str
    case: Case


async def on_issue_event(
    event: Event, cause: Envelope, uow: UnitOfWork[Cases], rules: Rules
) -> None:
    """Follow the matter's state from the events other services publish."""
    tracked = await uow.store.get(cause.subject)
    case = tracked.case if tracked else None
    new = evolve(case, event)
    if new is not None and new != case:
        correlation = tracked.correlation_id if tracked else cause.correlationid
        await uow.store.save(cause.subject, Tracked(new, cause.id, correlation))


async def load_case(units: UowFactory[Cases], issue_id: str) -> Tracked | None:
    async with units() as uow:
        return await uow.store.get(issue_id, lock=False)


async def resolve_issue(
    units: UowFactory[Cases], rules: Rules, issue_id: str, command: ResolveIssue
) -> Recorded:
    """The assigned unit reports the matter solved (cancellation)."""
    return await _decide_and_record(
        units,
        rules,
        issue_id,
        command.resolved_by or command.unit,
        lambda case, today: decide_resolution(case, command, today, rules.calendar),
    )


async def record_lookback(
    units: UowFactory[Cases], rules: Rules, issue_id: str, command: RecordLookback
) -> Recorded:
    """Line staff record the look-back visit: passed closes the loop, failed reopens it."""
    return await _decide_and_record(
        units,
        rules,
        issue_id,
        command.visitor,
        lambda case, today: decide_lookback(case, command, today),
    )


async def _decide_and_record(
    units: UowFactory[Cases],
    rules: Rules,
    issue_id: str,
    actor: str,
    decide: Callable[[Case | None, date], Event],
) -> Recorded:
    """Load and lock the case, decide, then save the new case and its event in one commit."""
    async with units() as uow:
        tracked = await uow.store.get(issue_id)
        event = decide(tracked.case if tracked else None, local_date(uow.now, rules.timezone))
        assert tracked is not None  # deciding on an unknown matter raises UnknownIssue
        after = await _record_chained(uow, issue_id, tracked, [event], actor)
        await uow.commit()
    return Recorded(event_id=after.last_event_id, case=after.case)


async def _record_chained(
    uow: UnitOfWork[Cases], issue_id: str, tracked: Tracked, events: list[Event], actor: str
) -> Tracked:
    """Record ``events`` in order, each caused by the one before (the first by the case's
    last event), and save the case they lead to."""
    for event in events:
        envelope = uow.record(
            event,
            issue_id=issue_id,
            actor=actor,
            correlation_id=tracked.correlation_id,
            causation_id=tracked.last_event_id,
        )
        new = evolve(tracked.case, event)
        assert new is not None
        tracked = Tracked(new, envelope.id, tracked.correlation_id)
    if events:
        await uow.store.save(issue_id, tracked)
    return tracked


async def recompute_lookbacks(units: UowFactory[Cases], rules: Rules) -> int:
    """Count provisional look-back due dates again on the calendar as it is now; each
    change is an event. Returns how many."""
    changed = 0
    async with units() as uow:
        for issue_id, tracked in await uow.store.provisional():
            event = decide_lookback_recompute(tracked.case, rules.calendar)
            if event is not None:
                await _record_chained(uow, issue_id, tracked, [event], ACTOR)
                changed += 1
        await uow.commit()
    return changed


async def check_deadlines(units: UowFactory[Cases], rules: Rules, today: date) -> int:
    """Mark overdue and escalate every matter past its deadline or look-back window as of
    ``today``; each step is recorded once, in the transaction that saves the case.
    Returns how many events were recorded."""
    recorded = 0
    async with units() as uow:
        for issue_id, tracked in await uow.store.past_due(today):
            events: list[Event] = list(
                decide_deadline_checks(tracked.case, today, rules.calendar, rules.ladder)
            )
            await _record_chained(uow, issue_id, tracked, events, ACTOR)
            recorded += len(events)
        await uow.commit()
    return recorded


HANDLERS: Handlers = {
    IssueReported: on_issue_event,
    IssueAssigned: on_issue_event,
    IssueDeadlineRecomputed: on_issue_event,
    IssueDeadlineExtended: on_issue_event,
}
