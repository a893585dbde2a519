"""Followup's rules: cancellation by the assigned unit and the look-back visit. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from functools import singledispatch, wraps
from typing import Literal, TypeVar

from minqing.services.followup.escalation import Ladder, Person
from minqing.shared.contract.events import (
    EscalationKind,
    Event,
    FundingSource,
    FundingStatus,
    IssueAssigned,
    IssueDeadlineExtended,
    IssueDeadlineRecomputed,
    IssueEscalated,
    IssueFundingRecorded,
    IssueLookbackDueRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueMilestoneDueRecomputed,
    IssueOverdue,
    IssuePlanSet,
    IssueProgressReported,
    IssueReported,
    IssueResolved,
    IssueResponsibleChanged,
    IssueRevisitRecorded,
    IssueStatus,
    OverdueKind,
    PhotoRef,
    PlannedMilestone,
)
from minqing.shared.domain.calendar import (
    WorkingCalendar,
    add_working_days,
    deadline_after,
    recount,
)

LOOKBACK_WORKING_DAYS = 7
LOOKBACK_FAILURES_ESCALATED = 2  # the second failed look-back goes to the leader in charge


@dataclass(frozen=True)
class Milestone:
    """One stage of the matter's plan and how far it got; overdue and escalation level as
    for the matter itself."""

    number: int
    title: str
    due: date
    responsible_id: str
    responsible_name: str
    provisional: bool = False
    working_days: int = 0  # counted from the case's plan_counted_from
    done: bool = False
    overdue: bool = False
    escalation_level: int = 0


@dataclass(frozen=True)
class Funding:
    """One entry of money for the matter, in yuan, at its latest status."""

    funding_id: str
    amount: Decimal
    source: FundingSource
    status: FundingStatus


@dataclass(frozen=True)
class Case:
    """What followup knows of one matter."""

    status: IssueStatus
    assignment_no: int = 0
    unit: str | None = None
    deadline: date | None = None
    lookback_due: date | None = None
    resolved_on: date | None = None
    deadline_calendar: str | None = None  # the calendar that counted the deadline
    lookback_provisional: bool = False
    responsible_person_id: str | None = None
    responsible_person_name: str | None = None
    # The overdue the matter is in (what, and the date it was due), and how far it has
    # escalated: a new deadline or look-back makes a new overdue, from level 0.
    overdue_kind: str | None = None
    overdue_due: date | None = None
    escalation_level: int = 0
    # A major affair's plan, and the money of the matter; both outlive a re-assignment.
    plan_template: str | None = None
    plan_counted_from: date | None = None
    milestones: tuple[Milestone, ...] = ()
    funds: tuple[Funding, ...] = ()
    # Who resolved it, who is to look back, and how many look-backs failed so far.
    resolved_by: str | None = None
    lookback_unit: str | None = None
    lookback_failures: int = 0
    # The channel that reported it and that channel's own ticket id (issue.reported), by
    # which a department system refers to the matter.
    source: str | None = None
    external_ref: str | None = None
    # What a visitor needs on the site: the matter (issue.reported) and what the unit said
    # it did (issue.resolved). Never the reporter's name or phone.
    title: str | None = None
    village: str | None = None
    address: str | None = None
    summary: str | None = None
    # A resident's low score asked for a re-visit (issue.revisit_flagged): why, and by when;
    # cleared by the next look-back.
    revisit_reason: str | None = None
    revisit_due: date | None = None


@dataclass(frozen=True)
class ResolveIssue:
    unit: str
    summary: str
    resolved_by: str | None = None  # the actor (a principal's id)
    evidence: tuple[str, ...] = ()
    cost: Decimal | None = None
    funding_source: FundingSource | None = None
    on_behalf_of: str | None = None  # the person on the ground the actor names
    photos: tuple[PhotoRef, ...] = ()  # uploaded first to intake's photo store


@dataclass(frozen=True)
class ReportProgress:
    milestone: int
    note: str
    done: bool
    reported_by: str
    unit: str | None = None  # given: only the assigned unit may report progress
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class RecordFunding:
    funding_id: str
    amount: Decimal
    source: FundingSource
    status: FundingStatus
    recorded_by: str
    note: str = ""
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class RecordLookback:
    outcome: Literal["passed", "failed"]
    visitor: str
    notes: str
    on_behalf_of: str | None = None
    # The units the visitor belongs to: line staff never look back on their own unit's
    # resolution.
    visitor_units: frozenset[str] = frozenset()
    # The unit the registry of line staff (linestaff.py) names the visitor line staff of
    # (None: not in it). The HTTP edge always reads it; in-process callers that do not
    # (``checked=False``: the rules' own tests) decide without the registry.
    line_staff_of: str | None = None
    checked: bool = False
    photos: tuple[PhotoRef, ...] = ()  # uploaded first to intake's photo store


class NotLineStaff(Exception):
    """The visitor is not line staff of the unit that looks back at the matter."""


def check_line_staff(command: RecordLookback, lookback_unit: str, unit_name: str) -> None:
    """Only line staff of the look-back unit (by the registry) record its look-back."""
    if not command.checked or command.line_staff_of == lookback_unit:
        return
    registered = (
        f"the registry has them as line staff of {command.line_staff_of}"
        if command.line_staff_of
        else "they are not in the registry of line staff"
    )
    raise NotLineStaff(
        f"{command.visitor} may not record this look-back: line staff of {unit_name} "
        f"({lookback_unit}) look back at this matter, and {registered}"
    )


class UnknownIssue(Exception):
    """No such matter."""


class WrongState(Exception):
    """The matter is not in a state that allows this step; the message says why."""


class NotAssignedUnit(WrongState):
    """Another unit than the one the matter is assigned to tried a step of that unit."""


class PlanBeyondDeadline(ValueError):
    """A plan whose last step is due after the matter's deadline, set without a reason for
    the deadline to follow it: a supervisor would otherwise be shown a deadline the plan
    itself does not keep."""


def decide_resolution(
    case: Case | None,
    command: ResolveIssue,
    today: date,
    calendar: WorkingCalendar,
    *,
    lookback_unit: str | None = None,
) -> IssueResolved:
    """The assigned unit cancels the item; the look-back is due within 7 working days, by
    line staff of ``lookback_unit``."""
    if case is None:
        raise UnknownIssue("no such matter")
    if case.status in ("reported", "reopened"):
        raise WrongState(f"the matter is {case.status} and not assigned to a unit yet")
    if case.status == "resolved":
        raise WrongState("the matter is already resolved and awaits its look-back visit")
    if case.status == "closed":
        raise WrongState("the matter is closed")
    if command.unit != case.unit:
        raise NotAssignedUnit(f"the matter is assigned to {case.unit}, not to {command.unit}")
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
        evidence=command.evidence,
        cost=command.cost,
        funding_source=command.funding_source,
        lookback_unit=lookback_unit,
        on_behalf_of=command.on_behalf_of,
        photos=command.photos,
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


def decide_milestone_recompute(
    case: Case, calendar: WorkingCalendar
) -> list[IssueMilestoneDueRecomputed]:
    """Count the provisional due dates of milestones not done again; an event for each
    that became firm or moved."""
    if case.plan_counted_from is None:
        return []
    events = []
    for m in case.milestones:
        if not m.provisional or m.done:
            continue
        again = recount(calendar, case.plan_counted_from, m.working_days, m.due)
        if again is not None:
            events.append(
                IssueMilestoneDueRecomputed(
                    milestone=m.number,
                    previous_due=m.due,
                    due=again.day,
                    calendar=again.calendar,
                    provisional=again.provisional,
                    note=again.note,
                    assignment_no=case.assignment_no,
                )
            )
    return events


def has_provisional_milestones(case: Case) -> bool:
    return any(m.provisional and not m.done for m in case.milestones)


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
    if command.outcome == "passed" and command.visitor == case.resolved_by:
        raise WrongState(
            f"{command.visitor} resolved the matter and cannot pass its look-back; "
            f"line staff of {case.lookback_unit or 'another unit'} look back"
        )
    if case.unit is not None and case.unit in command.visitor_units:
        raise WrongState(
            f"{command.visitor} belongs to {case.unit}, which resolved the matter: line staff "
            f"of {case.lookback_unit or 'another unit'} look back"
        )
    recorded = {
        "visitor": command.visitor,
        "on_behalf_of": command.on_behalf_of,
        "notes": command.notes,
        "assignment_no": case.assignment_no,
        "lookback_due": case.lookback_due,
        "within_window": today <= case.lookback_due,
        "photos": command.photos,
    }
    if command.outcome == "passed":
        return IssueLookbackPassed(**recorded)
    return IssueLookbackFailed(**recorded, failures=case.lookback_failures + 1)


def awaits_revisit(case: Case | None) -> bool:
    """A closed matter a resident's low score sent line staff back to."""
    return case is not None and case.status == "closed" and case.revisit_reason is not None


def decide_revisit(case: Case, command: RecordLookback, today: date) -> IssueRevisitRecorded:
    """Record the re-visit of a closed matter: passed, it stays closed; failed, it is
    reopened as a failed look-back reopens it (and counts as one)."""
    if case.revisit_reason is None or case.revisit_due is None:
        raise WrongState("the matter is closed; its look-back has passed")
    if command.outcome == "passed" and command.visitor == case.resolved_by:
        raise WrongState(
            f"{command.visitor} resolved the matter and cannot pass its re-visit; "
            f"line staff of {case.lookback_unit or 'another unit'} go back"
        )
    return IssueRevisitRecorded(
        outcome=command.outcome,
        visitor=command.visitor,
        notes=command.notes,
        reason=case.revisit_reason,
        due=case.revisit_due,
        within_window=today <= case.revisit_due,
        assignment_no=case.assignment_no,
        on_behalf_of=command.on_behalf_of,
        failures=case.lookback_failures + 1 if command.outcome == "failed" else None,
        photos=command.photos,
    )


@dataclass(frozen=True)
class Reopening:
    """A visit that found a matter not fixed and reopened it: a failed look-back, or a
    failed re-visit of a closed matter after a resident's low score. Both count as failed
    look-backs (``failures``: this matter's, this one included)."""

    visit: Literal["look-back", "re-visit"]
    notes: str
    due: date
    failures: int
    assignment_no: int


def reopening(event: Event) -> Reopening | None:
    """The reopening an event records, if it records one: the one rule by which
    followup's state and escalation treat a failed look-back and a failed re-visit alike."""
    if isinstance(event, IssueLookbackFailed):
        return Reopening(
            "look-back", event.notes, event.lookback_due, event.failures, event.assignment_no
        )
    if isinstance(event, IssueRevisitRecorded) and event.reopens:
        assert event.failures is not None  # a re-visit that reopens counts
        return Reopening("re-visit", event.notes, event.due, event.failures, event.assignment_no)
    return None


def decide_lookback_escalation(visit: Event, case: Case, ladder: Ladder) -> IssueEscalated | None:
    """The second failed look-back (a failed re-visit counts as one) goes to the town
    leader in charge of the unit, once."""
    reopened = reopening(visit)
    if reopened is None or reopened.failures != LOOKBACK_FAILURES_ESCALATED:
        return None
    leader = ladder.leader_of(case.unit)
    return IssueEscalated(
        kind="lookback_failed",
        level=1,
        to_role="leader_in_charge",
        to_person_id=leader.id,
        to_person_name=leader.name,
        due=reopened.due,
        assignment_no=reopened.assignment_no,
        reason=(
            f"the look-back failed a second time: {reopened.notes}"
            if reopened.visit == "look-back"
            else f"the re-visit failed, the matter's second failed visit: {reopened.notes}"
        ),
    )


def decide_plan(
    case: Case | None,
    milestones: tuple[PlannedMilestone, ...],
    *,
    template: str | None,
    counted_from: date,
    calendar: str,
    set_by: str,
    extend_deadline_reason: str | None = None,
    on_behalf_of: str | None = None,
) -> IssuePlanSet:
    """Give an assigned matter its staged plan (replacing the one before).

    A major affair is done in steps, each with a date, so its deadline follows its plan: a
    plan whose last step is due after the deadline is set only with the reason for moving
    the deadline (the event carries it, and assignment extends the deadline to that step's
    date), and refused without one."""
    if case is None:
        raise UnknownIssue("no such matter")
    if case.status != "assigned":
        raise WrongState(f"the matter is {case.status}: a plan is set while it is assigned")
    last = max((m.due for m in milestones), default=None)
    beyond = case.deadline is not None and last is not None and last > case.deadline
    if beyond and not extend_deadline_reason:
        raise PlanBeyondDeadline(
            f"the plan's last step is due {last}, after the matter's deadline "
            f"{case.deadline}: give extend_deadline_reason for the deadline to follow the "
            "plan, or end the plan by the deadline"
        )
    return IssuePlanSet(
        plan_template=template,
        milestones=milestones,
        counted_from=counted_from,
        calendar=calendar,
        set_by=set_by,
        on_behalf_of=on_behalf_of,
        assignment_no=case.assignment_no,
        extend_deadline_reason=extend_deadline_reason if beyond else None,
    )


def decide_progress(case: Case | None, command: ReportProgress) -> IssueProgressReported:
    """Progress on one milestone of an assigned matter's plan."""
    if case is None:
        raise UnknownIssue("no such matter")
    if case.status != "assigned":
        raise WrongState(f"the matter is {case.status}: progress is reported while assigned")
    if command.unit is not None and command.unit != case.unit:
        raise NotAssignedUnit(f"the matter is assigned to {case.unit}, not to {command.unit}")
    if not case.milestones:
        raise WrongState("the matter has no plan: progress is reported per milestone")
    found = [m for m in case.milestones if m.number == command.milestone]
    if not found:
        raise WrongState(
            f"the plan has milestones 1 to {len(case.milestones)}, not {command.milestone}"
        )
    if found[0].done and not command.done:
        raise WrongState(f"milestone {command.milestone} is done already")
    return IssueProgressReported(
        milestone=command.milestone,
        title=found[0].title,
        note=command.note,
        done=command.done,
        reported_by=command.reported_by,
        on_behalf_of=command.on_behalf_of,
        assignment_no=case.assignment_no,
    )


def decide_funding(case: Case | None, command: RecordFunding) -> IssueFundingRecorded:
    """A new entry of money for the matter, or a new status of an entry: the same amount
    and source as before."""
    if case is None:
        raise UnknownIssue("no such matter")
    before = next((f for f in case.funds if f.funding_id == command.funding_id), None)
    if before is not None and (before.amount, before.source) != (command.amount, command.source):
        raise WrongState(
            f"funding {command.funding_id} is {before.amount} yuan of {before.source}; "
            "only its status can change"
        )
    return IssueFundingRecorded(
        funding_id=command.funding_id,
        amount=command.amount,
        source=command.source,
        status=command.status,
        note=command.note,
        recorded_by=command.recorded_by,
        on_behalf_of=command.on_behalf_of,
    )


def next_milestone_due(case: Case) -> date | None:
    """The earliest due date among the milestones not done yet."""
    return min((m.due for m in case.milestones if not m.done), default=None)


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
    late (after a restart), it records every step that fell due meanwhile, in order.
    While the matter is assigned, each milestone of its plan not done by its due date
    goes the same way."""
    events: list[IssueOverdue | IssueEscalated] = []
    waiting = watched(case)
    if waiting is not None and today > waiting[1]:
        kind, due = waiting
        level = case.escalation_level
        if (case.overdue_kind, case.overdue_due) != (kind, due):
            events.append(
                IssueOverdue(kind=kind, due=due, assignment_no=case.assignment_no, unit=case.unit)
            )
            level = 0
        responsible = None
        if case.responsible_person_id is not None:
            responsible = Person(
                id=case.responsible_person_id, name=case.responsible_person_name or ""
            )
        what = "not resolved by its deadline" if kind == "resolution" else "look-back not done"
        events += _climb(case, kind, due, level, responsible, what, today, calendar, ladder)
    if case.status == "assigned":
        for milestone in case.milestones:
            events += _milestone_checks(case, milestone, today, calendar, ladder)
    return events


def _milestone_checks(
    case: Case, milestone: Milestone, today: date, calendar: WorkingCalendar, ladder: Ladder
) -> list[IssueOverdue | IssueEscalated]:
    if milestone.done or today <= milestone.due:
        return []
    events: list[IssueOverdue | IssueEscalated] = []
    level = milestone.escalation_level
    if not milestone.overdue:
        events.append(
            IssueOverdue(
                kind="milestone",
                due=milestone.due,
                assignment_no=case.assignment_no,
                unit=case.unit,
                milestone=milestone.number,
            )
        )
        level = 0
    person = Person(id=milestone.responsible_id, name=milestone.responsible_name)
    what = f"milestone {milestone.number} ({milestone.title}) not done by its due date"
    climbed = _climb(
        case,
        "milestone",
        milestone.due,
        level,
        person,
        what,
        today,
        calendar,
        ladder,
        milestone=milestone.number,
    )
    return events + climbed


def _climb(
    case: Case,
    kind: EscalationKind,
    due: date,
    level: int,
    responsible: Person | None,
    what: str,
    today: date,
    calendar: WorkingCalendar,
    ladder: Ladder,
    *,
    milestone: int | None = None,
) -> list[IssueOverdue | IssueEscalated]:
    """The ladder steps above ``level`` that fell due by ``today``."""
    events: list[IssueOverdue | IssueEscalated] = []
    for number, step in enumerate(ladder.steps[level:], start=level + 1):
        if today <= add_working_days(calendar, due, step.after_working_days):
            break
        person = (
            ladder.leader_of(case.unit)
            if step.to == "leader_in_charge" or responsible is None
            else responsible
        )
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
                milestone=milestone,
            )
        )
    return events


def evolve(case: Case | None, event: Event) -> Case | None:
    """The case after one event; stale or repeated events leave it as it is."""
    return _evolve(event, case)


@singledispatch
def _evolve(event: Event, case: Case | None) -> Case | None:
    return case  # an event that does not change a case


E = TypeVar("E", bound=Event)


def _of_current(step: Callable[[E, Case], Case]) -> Callable[[E, Case | None], Case | None]:
    """Apply ``step`` only to an event of the current assignment: one of an earlier
    assignment, or of a matter not known, leaves the case as it is."""

    @wraps(step)
    def guarded(event: E, case: Case | None) -> Case | None:
        if case is None or getattr(event, "assignment_no", None) != case.assignment_no:
            return case
        return step(event, case)

    return guarded


@_evolve.register(IssueReported)
def _reported(event: IssueReported, case: Case | None) -> Case | None:
    if case is None:
        case = Case(status="reported", source=event.source, external_ref=event.external_ref)
    elif case.title is not None:
        return case
    return replace(case, title=event.title, village=event.village, address=event.address)


@_evolve.register(IssueAssigned)
def _assigned(event: IssueAssigned, case: Case | None) -> Case | None:
    if case is not None and event.assignment_no <= case.assignment_no:
        return case
    kept = case or Case(status="reported")
    return Case(
        status="assigned",
        assignment_no=event.assignment_no,
        unit=event.unit,
        deadline=event.deadline,
        deadline_calendar=event.calendar,
        responsible_person_id=event.responsible_person_id,
        responsible_person_name=event.responsible_person_name,
        plan_template=kept.plan_template,
        plan_counted_from=kept.plan_counted_from,
        milestones=kept.milestones,
        funds=kept.funds,
        lookback_failures=kept.lookback_failures,
        source=kept.source,
        external_ref=kept.external_ref,
        title=kept.title,
        village=kept.village,
        address=kept.address,
    )


@_evolve.register(IssueFundingRecorded)
def _funding_recorded(event: IssueFundingRecorded, case: Case | None) -> Case | None:
    return replace(case, funds=_funded(case.funds, event)) if case is not None else None


@_evolve.register(IssueResolved)
@_of_current
def _resolved(event: IssueResolved, case: Case) -> Case:
    if case.status != "assigned":
        return case
    return replace(
        case,
        status="resolved",
        lookback_due=event.lookback_due,
        resolved_on=event.resolved_on,
        lookback_provisional=event.lookback_due_provisional,
        resolved_by=event.resolved_by,
        lookback_unit=event.lookback_unit,
        summary=event.summary,
    )


@_evolve.register(IssueDeadlineRecomputed)
@_of_current
def _deadline_recomputed(event: IssueDeadlineRecomputed, case: Case) -> Case:
    if case.status != "assigned":
        return case
    return replace(case, deadline=event.deadline, deadline_calendar=event.calendar)


@_evolve.register(IssueDeadlineExtended)
@_of_current
def _deadline_extended(event: IssueDeadlineExtended, case: Case) -> Case:
    if case.status != "assigned":
        return case
    # overdue anew only past the new date
    return replace(case, deadline=event.deadline, deadline_calendar=event.calendar)


@_evolve.register(IssuePlanSet)
@_of_current
def _plan_set(event: IssuePlanSet, case: Case) -> Case:
    return replace(
        case,
        plan_template=event.plan_template,
        plan_counted_from=event.counted_from,
        milestones=_milestones(event.milestones),
    )


@_evolve.register(IssueMilestoneDueRecomputed)
@_of_current
def _milestone_due_recomputed(event: IssueMilestoneDueRecomputed, case: Case) -> Case:
    due, provisional = event.due, event.provisional
    return _with_milestone(
        case, event.milestone, lambda m: replace(m, due=due, provisional=provisional)
    )


@_evolve.register(IssueProgressReported)
@_of_current
def _progress_reported(event: IssueProgressReported, case: Case) -> Case:
    if not event.done:
        return case
    return _with_milestone(case, event.milestone, lambda m: replace(m, done=True))


@_evolve.register(IssueOverdue)
@_of_current
def _overdue(event: IssueOverdue, case: Case) -> Case:
    if event.milestone is not None:
        return _with_milestone(
            case, event.milestone, lambda m: replace(m, overdue=True, escalation_level=0)
        )
    return replace(case, overdue_kind=event.kind, overdue_due=event.due, escalation_level=0)


@_evolve.register(IssueEscalated)
@_of_current
def _escalated(event: IssueEscalated, case: Case) -> Case:
    level = event.level
    if event.milestone is not None:
        return _with_milestone(
            case,
            event.milestone,
            lambda m: replace(m, escalation_level=max(m.escalation_level, level)),
        )
    if event.kind == "lookback_failed":
        return case
    return replace(case, escalation_level=max(case.escalation_level, level))


@_evolve.register(IssueResponsibleChanged)
@_of_current
def _responsible_changed(event: IssueResponsibleChanged, case: Case) -> Case:
    # A new secretary takes over the matter: escalations go to them from now on.
    return replace(
        case,
        responsible_person_id=event.person_id,
        responsible_person_name=event.person_name,
    )


@_evolve.register(IssueLookbackDueRecomputed)
@_of_current
def _lookback_due_recomputed(event: IssueLookbackDueRecomputed, case: Case) -> Case:
    if case.status != "resolved":
        return case
    return replace(case, lookback_due=event.lookback_due, lookback_provisional=event.provisional)


@_evolve.register(IssueLookbackPassed)
@_of_current
def _lookback_passed(event: IssueLookbackPassed, case: Case) -> Case:
    if case.status != "resolved":
        return case
    return replace(case, status="closed", revisit_reason=None, revisit_due=None)


@_evolve.register(IssueLookbackFailed)
@_evolve.register(IssueRevisitRecorded)
@_of_current
def _visited(event: IssueLookbackFailed | IssueRevisitRecorded, case: Case) -> Case:
    """A look-back that failed, or a re-visit: the re-visit task is done; a reopening (a
    failed look-back of a resolved matter, a failed re-visit of a closed one) sends the
    matter back to be assigned again."""
    reopened = reopening(event)
    if reopened is None:
        return replace(case, revisit_reason=None, revisit_due=None)
    if case.status not in ("resolved", "closed"):
        return case
    return replace(
        case,
        status="reopened",
        lookback_failures=reopened.failures,
        revisit_reason=None,
        revisit_due=None,
    )


def flag_revisit(case: Case | None, reason: str, due: date) -> Case | None:
    """A resident's low score asks line staff to go back: on a matter awaiting its
    look-back (the look-back answers it) or closed (a re-visit task). A matter back with
    its unit is being worked on again; one flagged already keeps its first due date."""
    if case is None or case.status not in ("resolved", "closed"):
        return case
    if case.revisit_reason is not None:
        return case
    return replace(case, revisit_reason=reason, revisit_due=due)


def _milestones(planned: tuple[PlannedMilestone, ...]) -> tuple[Milestone, ...]:
    return tuple(
        Milestone(
            number=m.number,
            title=m.title,
            due=m.due,
            responsible_id=m.responsible_id,
            responsible_name=m.responsible_name,
            provisional=m.provisional,
            working_days=m.working_days,
        )
        for m in planned
    )


def _with_milestone(case: Case, number: int, change: Callable[[Milestone], Milestone]) -> Case:
    """The case with milestone ``number`` changed."""
    return replace(
        case,
        milestones=tuple(change(m) if m.number == number else m for m in case.milestones),
    )


def _funded(funds: tuple[Funding, ...], event: IssueFundingRecorded) -> tuple[Funding, ...]:
    entry = Funding(event.funding_id, event.amount, event.source, event.status)
    others = tuple(f for f in funds if f.funding_id != event.funding_id)
    if len(others) == len(funds):
        return (*funds, entry)
    return tuple(entry if f.funding_id == event.funding_id else f for f in funds)
