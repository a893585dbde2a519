"""Assignment's rules: who is responsible for a matter, and by when. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

from shared.calendar import WorkingCalendar, deadline_after, recount
from shared.events import (
    IssueAssigned,
    IssueDeadlineRecomputed,
    IssueLookbackFailed,
    IssueReported,
)
from shared.reference import Route

Routing = Callable[[str, str], Route]  # (category, village) -> who is responsible
INITIAL_REASON = "routed on report: category {category} -> {unit}; village secretary responsible"


@dataclass(frozen=True)
class Assignment:
    """The current assignment of one matter."""

    category: str
    village: str
    unit: str
    person_id: str
    person_name: str
    deadline: date
    assignment_no: int
    assigned_on: date  # the local day the deadline was counted from
    working_days: int
    calendar: str
    deadline_provisional: bool = False


class IssueNotAssigned(Exception):
    """A look-back failure arrived for a matter this service never assigned."""


def decide_initial(
    current: Assignment | None,
    reported: IssueReported,
    routing: Routing,
    today: date,
    calendar: WorkingCalendar,
) -> IssueAssigned | None:
    """Assign a newly reported matter; ``None`` if it already has an assignment."""
    if current is not None:
        return None
    route = routing(reported.category, reported.village)
    return _assign(
        reported.category,
        reported.village,
        route,
        today,
        calendar,
        assignment_no=1,
        reason=INITIAL_REASON.format(category=reported.category, unit=route.unit),
    )


def decide_reassignment(
    current: Assignment | None,
    failed: IssueLookbackFailed,
    routing: Routing,
    today: date,
    calendar: WorkingCalendar,
) -> IssueAssigned | None:
    """Re-assign after a failed look-back, with a new deadline; ``None`` if already done."""
    if current is None:
        raise IssueNotAssigned("look-back failed for a matter that was never assigned")
    if failed.assignment_no != current.assignment_no:
        return None  # a repeat of a failure this service has already acted on
    return _assign(
        current.category,
        current.village,
        routing(current.category, current.village),
        today,
        calendar,
        assignment_no=current.assignment_no + 1,
        reason=f"look-back failed ({failed.visitor}): {failed.notes}",
    )


def _assign(
    category: str,
    village: str,
    route: Route,
    today: date,
    calendar: WorkingCalendar,
    *,
    assignment_no: int,
    reason: str,
) -> IssueAssigned:
    deadline = deadline_after(calendar, today, route.working_days)
    return IssueAssigned(
        unit=route.unit,
        responsible_person_id=route.person_id,
        responsible_person_name=route.person_name,
        deadline=deadline.day,
        working_days=route.working_days,
        assignment_no=assignment_no,
        reason=reason,
        category=category,
        village=village,
        calendar=deadline.calendar,
        deadline_provisional=deadline.provisional,
        deadline_note=deadline.note,
    )


def decide_recompute(
    current: Assignment, calendar: WorkingCalendar
) -> IssueDeadlineRecomputed | None:
    """Count a provisional deadline again; an event when it became firm or moved."""
    if not current.deadline_provisional:
        return None
    again = recount(calendar, current.assigned_on, current.working_days, current.deadline)
    if again is None:
        return None
    return IssueDeadlineRecomputed(
        previous_deadline=current.deadline,
        deadline=again.day,
        calendar=again.calendar,
        provisional=again.provisional,
        note=again.note,
        assignment_no=current.assignment_no,
    )


def evolve(
    current: Assignment | None, event: IssueAssigned | IssueDeadlineRecomputed, today: date
) -> Assignment:
    """The state after an assignment (each replaces the previous one) or a recount."""
    if isinstance(event, IssueDeadlineRecomputed):
        assert current is not None, "only an assigned matter's deadline is recomputed"
        return replace(
            current,
            deadline=event.deadline,
            calendar=event.calendar,
            deadline_provisional=event.provisional,
        )
    return Assignment(
        category=event.category,
        village=event.village,
        unit=event.unit,
        person_id=event.responsible_person_id,
        person_name=event.responsible_person_name,
        deadline=event.deadline,
        assignment_no=event.assignment_no,
        assigned_on=today,
        working_days=event.working_days,
        calendar=event.calendar,
        deadline_provisional=event.deadline_provisional,
    )
