"""Assignment's rules: who is responsible for a matter, and by when. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from shared.calendar import WorkingCalendar, add_working_days
from shared.events import IssueAssigned, IssueLookbackFailed, IssueReported
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
    return IssueAssigned(
        unit=route.unit,
        responsible_person_id=route.person_id,
        responsible_person_name=route.person_name,
        deadline=add_working_days(calendar, today, route.working_days),
        working_days=route.working_days,
        assignment_no=assignment_no,
        reason=reason,
        category=category,
        village=village,
        calendar=calendar.name,
    )


def evolve(current: Assignment | None, assigned: IssueAssigned) -> Assignment:
    """The state after an assignment (each assignment replaces the previous one)."""
    return Assignment(
        category=assigned.category,
        village=assigned.village,
        unit=assigned.unit,
        person_id=assigned.responsible_person_id,
        person_name=assigned.responsible_person_name,
        deadline=assigned.deadline,
        assignment_no=assigned.assignment_no,
    )
