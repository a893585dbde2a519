"""Followup's rules: cancellation by the assigned unit and the look-back visit. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from shared.calendar import WorkingCalendar, deadline_after
from shared.events import (
    Event,
    IssueAssigned,
    IssueLookbackDueRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueReported,
    IssueResolved,
    IssueStatus,
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
    again = deadline_after(calendar, case.resolved_on, LOOKBACK_WORKING_DAYS)
    if again.provisional and again.day == case.lookback_due:
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
    if isinstance(event, IssueLookbackDueRecomputed) and case.status == "resolved":
        return replace(
            case, lookback_due=event.lookback_due, lookback_provisional=event.provisional
        )
    if isinstance(event, IssueLookbackPassed) and case.status == "resolved":
        return replace(case, status="closed")
    if isinstance(event, IssueLookbackFailed) and case.status == "resolved":
        return replace(case, status="reopened")
    return case
