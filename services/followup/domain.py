"""Followup's rules: cancellation by the assigned unit and the look-back visit. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from services.followup.escalation import Ladder, Person
from shared.calendar import WorkingCalendar, add_working_days, deadline_after, recount
from shared.events import (
    Event,
    IssueAssigned,
    IssueDeadlineExtended,
    IssueDeadlineRecomputed,
    IssueEscalated,
    IssueLookbackDueRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueOverdue,
    IssueReported,
    IssueResolved,
    IssueStatus,
    OverdueKind,
)

LOOKBACK_WORKING_DAYS = 7


@dataclass(frozen=True)
class Case:
    """What followup knows of one matter."""

    status: IssueStatus
    assignment_no: int = 0
    unit: str | None = None
    deadline: date | None = None
    lookback_due: date | None = None
    resolved_on: date | None = None
    lookback_provisional: bool = False
    responsible_person_id: str | None = None
    responsible_person_name: str | None = None
    # The overdue the matter is in (what, and the date it was due), and how far it has
    # escalated: a new deadline or look-back makes a new overdue, from level 0.
    overdue_kind: str | None = None
    overdue_due: date | None = None
    escalation_level: int = 0


@dataclass(frozen=True)
class ResolveIssue:
    unit: str
    summary: str
    resolved_by: str | None = None


@dataclass(frozen=True)
class RecordLookback:
    outcome: Literal["passed", "failed"]
    visitor: str
    notes: str


class UnknownIssue(Exception):
    """No such matter."""


class WrongState(Exception):
    """The matter is not in a state that allows this step; the message says why."""


def decide_resolution(
    case: Case | None, command: ResolveIssue, today: date, calendar: WorkingCalendar
) -> IssueResolved:
    """The assigned unit cancels the item; the look-back is due within 7 working days."""
    if case is None:
        raise UnknownIssue("no such matter")
    if case.status in ("reported", "reopened"):
        raise WrongState(f"the matter is {case.status} and not assigned to a unit yet")
    if case.status == "resolved":
        raise WrongState("the matter is already resolved and awaits its look-back visit")
    if case.status == "closed":
        raise WrongState("the matter is closed")
    if command.unit != case.unit:
        raise WrongState(f"the matter is assigned to {case.unit}, not to {command.unit}")
    due = deadline_after(calendar, today, LOOKBACK_WORKING_DAYS)
    return IssueResolved(
        unit=command.unit,
        summary=command.summary,
        resolved_by=command.resolved_by or command.unit,
        assignment_no=case.assignment_no,
        lookback_due=due.day,
        resolved_on=today,
        calendar=due.calendar,
        lookback_due_provisional=due.provisional,
        lookback_due_note=due.note,
    )


def decide_lookback_recompute(
    case: Case, calendar: WorkingCalendar
) -> IssueLookbackDueRecomputed | None:
    """Count a provisional look-back due date again; an event when it became firm or
    moved."""
    if not case.lookback_provisional or case.resolved_on is None or case.lookback_due is None:
        return None
    again = recount(calendar, case.resolved_on, LOOKBACK_WORKING_DAYS, case.lookback_due)
    if again is None:
        return None
    return IssueLookbackDueRecomputed(
        previous_lookback_due=case.lookback_due,
        lookback_due=again.day,
        calendar=again.calendar,
        provisional=again.provisional,
        note=again.note,
        assignment_no=case.assignment_no,
    )


def decide_lookback(
    case: Case | None, command: RecordLookback, today: date
) -> IssueLookbackPassed | IssueLookbackFailed:
    """Record the visit: passed closes the loop, failed reopens the matter."""
    if case is None:
        raise UnknownIssue("no such matter")
    if case.status == "closed":
        raise WrongState("the matter is closed; its look-back has passed")
    if case.status != "resolved" or case.lookback_due is None:
        raise WrongState(f"the matter is {case.status}: a look-back comes after resolution")
    cls = IssueLookbackPassed if command.outcome == "passed" else IssueLookbackFailed
    return cls(
        visitor=command.visitor,
        notes=command.notes,
        assignment_no=case.assignment_no,
        lookback_due=case.lookback_due,
        within_window=today <= case.lookback_due,
    )


def watched(case: Case) -> tuple[OverdueKind, date] | None:
    """What the matter waits for, and by when: resolution by the deadline while assigned,
    the look-back by its due date while resolved."""
    if case.status == "assigned" and case.deadline is not None:
        return ("resolution", case.deadline)
    if case.status == "resolved" and case.lookback_due is not None:
        return ("lookback", case.lookback_due)
    return None


def decide_deadline_checks(
    case: Case, today: date, calendar: WorkingCalendar, ladder: Ladder
) -> list[IssueOverdue | IssueEscalated]:
    """What ``today`` makes of the matter: overdue the day after it was due, then each
    ladder step ``after_working_days`` working days after the due date, each once. Run
    late (after a restart), it records every step that fell due meanwhile, in order."""
    waiting = watched(case)
    if waiting is None or today <= waiting[1]:
        return []
    kind, due = waiting
    events: list[IssueOverdue | IssueEscalated] = []
    level = case.escalation_level
    if (case.overdue_kind, case.overdue_due) != (kind, due):
        events.append(
            IssueOverdue(kind=kind, due=due, assignment_no=case.assignment_no, unit=case.unit)
        )
        level = 0
    for number, step in enumerate(ladder.steps[level:], start=level + 1):
        if today <= add_working_days(calendar, due, step.after_working_days):
            break
        person = (
            ladder.leader_of(case.unit)
            if step.to == "leader_in_charge" or case.responsible_person_id is None
            else Person(id=case.responsible_person_id, name=case.responsible_person_name or "")
        )
        what = "not resolved by its deadline" if kind == "resolution" else "look-back not done"
        events.append(
            IssueEscalated(
                kind=kind,
                level=number,
                to_role=step.to,
                to_person_id=person.id,
                to_person_name=person.name,
                due=due,
                assignment_no=case.assignment_no,
                reason=f"{what} (due {due.isoformat()}); step {number}: "
                f"{step.after_working_days} working days after the due date",
            )
        )
    return events


def evolve(case: Case | None, event: Event) -> Case | None:
    """The case after one event; stale or repeated events leave it as it is."""
    if isinstance(event, IssueReported):
        return case or Case(status="reported")
    if isinstance(event, IssueAssigned):
        if case is not None and event.assignment_no <= case.assignment_no:
            return case
        return Case(
            status="assigned",
            assignment_no=event.assignment_no,
            unit=event.unit,
            deadline=event.deadline,
            responsible_person_id=event.responsible_person_id,
            responsible_person_name=event.responsible_person_name,
        )
    if case is None or getattr(event, "assignment_no", None) != case.assignment_no:
        return case  # unknown matter, or a step of an earlier assignment
    if isinstance(event, IssueResolved) and case.status == "assigned":
        return replace(
            case,
            status="resolved",
            lookback_due=event.lookback_due,
            resolved_on=event.resolved_on,
            lookback_provisional=event.lookback_due_provisional,
        )
    if isinstance(event, IssueDeadlineRecomputed) and case.status == "assigned":
        return replace(case, deadline=event.deadline)
    if isinstance(event, IssueDeadlineExtended) and case.status == "assigned":
        return replace(case, deadline=event.deadline)  # overdue anew only past the new date
    if isinstance(event, IssueOverdue):
        return replace(case, overdue_kind=event.kind, overdue_due=event.due, escalation_level=0)
    if isinstance(event, IssueEscalated):
        return replace(case, escalation_level=max(case.escalation_level, event.level))
    if isinstance(event, IssueLookbackDueRecomputed) and case.status == "resolved":
        return replace(
            case, lookback_due=event.lookback_due, lookback_provisional=event.provisional
        )
    if isinstance(event, IssueLookbackPassed) and case.status == "resolved":
        return replace(case, status="closed")
    if isinstance(event, IssueLookbackFailed) and case.status == "resolved":
        return replace(case, status="reopened")
    return case
