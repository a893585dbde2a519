"""Assignment's use cases: assign reported matters, re-assign after a failed look-back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from services.assignment.domain import (
    Assignment,
    IssueNotAssigned,
    Routing,
    decide_initial,
    decide_reassignment,
    decide_recompute,
    evolve,
)
from shared.calendar import WorkingCalendar
from shared.clock import local_date
from shared.consumer import Rejected
from shared.dispatch import Handlers
from shared.envelope import Envelope
from shared.events import IssueAssigned, IssueLookbackFailed, IssueReported
from shared.reference import UnknownCode
from shared.uow import UnitOfWork, UowFactory

ACTOR = "assignment"


class Assignments(Protocol):
    """The current assignment of each matter."""

    async def get(self, issue_id: str) -> Assignment | None: ...

    async def save(self, issue_id: str, assignment: Assignment) -> None: ...

    async def provisional(self) -> list[tuple[str, Assignment]]:
        """The assignments whose deadline is provisional, locked until commit."""
        ...


@dataclass(frozen=True)
class Rules:
    """What assignment decides with: the routing rules, the calendar, the town's time zone."""

    route: Routing
    calendar: WorkingCalendar
    timezone: str


async def on_issue_reported(
    event: IssueReported, cause: Envelope, uow: UnitOfWork[Assignments], rules: Rules
) -> None:
    """Route a new matter to its unit and responsible person, with a deadline."""
    current = await uow.store.get(cause.subject)
    today = local_date(cause.time, rules.timezone)
    try:
        assigned = decide_initial(current, event, rules.route, today, rules.calendar)
    except UnknownCode as exc:
        raise Rejected(str(exc)) from exc
    await _record(uow, cause, current, assigned, today)


async def on_lookback_failed(
    event: IssueLookbackFailed, cause: Envelope, uow: UnitOfWork[Assignments], rules: Rules
) -> None:
    """Re-assign a matter whose look-back failed, with a new deadline."""
    current = await uow.store.get(cause.subject)
    today = local_date(cause.time, rules.timezone)
    try:
        assigned = decide_reassignment(current, event, rules.route, today, rules.calendar)
    except (IssueNotAssigned, UnknownCode) as exc:
        raise Rejected(str(exc)) from exc
    await _record(uow, cause, current, assigned, today)


async def _record(
    uow: UnitOfWork[Assignments],
    cause: Envelope,
    current: Assignment | None,
    assigned: IssueAssigned | None,
    today: date,
) -> None:
    if assigned is not None:
        await uow.store.save(cause.subject, evolve(current, assigned, today))
        uow.record(assigned, issue_id=cause.subject, actor=ACTOR, cause=cause)


async def recompute_deadlines(units: UowFactory[Assignments], rules: Rules) -> int:
    """Count provisional deadlines again on the calendar as it is now (after the override
    file or the package learned a year); each change is an event. Returns how many."""
    changed = 0
    async with units() as uow:
        for issue_id, current in await uow.store.provisional():
            event = decide_recompute(current, rules.calendar)
            if event is not None:
                await uow.store.save(issue_id, evolve(current, event, current.assigned_on))
                uow.record(event, issue_id=issue_id, actor=ACTOR)
                changed += 1
        await uow.commit()
    return changed


HANDLERS: Handlers = {
    IssueReported: on_issue_reported,
    IssueLookbackFailed: on_lookback_failed,
}
