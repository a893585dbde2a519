"""Assignment's rules: who is responsible for a matter, and by when. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from functools import singledispatch, wraps
from typing import Literal, TypeVar

from minqing.services.assignment.routing import Matter, Person, Route, Routing
from minqing.shared.contract.events import (
    Event,
    IssueAccepted,
    IssueAssigned,
    IssueDeadlineExtended,
    IssueDeadlineRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssuePlanSet,
    IssueReported,
    IssueResolved,
    IssueResponsibleChanged,
    IssueRevisitRecorded,
    IssueSentBack,
    UnitResponsibleChanged,
)
from minqing.shared.contract.reference import Responsible
from minqing.shared.domain.calendar import (
    WorkingCalendar,
    deadline_after,
    recount,
    working_days_until,
)

MANUAL = "manual"  # the rule id of a supervisor's re-assignment
FILES_ACTOR = "service:assignment"  # the registry changed because the reference files did
Status = Literal["assigned", "resolved", "closed"]


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
    # "assigned" while the unit works on it; "resolved" until the look-back; "closed".
    status: Status = "assigned"
    scale: str | None = None
    source: str | None = None
    # The registry unit whose responsible person answers for the matter (None: a person
    # named by a rule or a supervisor): a new responsible person there takes it over.
    responsible_unit: str | None = None
    rule_id: str | None = None
    sent_back_reason: str | None = None  # sent back by its unit, waiting to be re-routed
    accepted_by: str | None = None  # who of its unit accepted it (签收), once per assignment
    # The matter's correlation id (its report's), so steps taken over HTTP stay in its chain.
    correlation_id: str | None = None


@dataclass(frozen=True)
class RegistryRow:
    """A unit as the registry keeps it: who is responsible now, and what the reference
    files said when last read (so a change in the files is told from a change by hand)."""

    current: Responsible
    seeded_person_id: str
    seeded_person_name: str
    seeded_contact: str


Registry = Mapping[str, RegistryRow]


@dataclass(frozen=True)
class SendBack:
    unit: str
    reason: str
    by: str  # the actor: an authenticated principal's id
    on_behalf_of: str | None = None  # the person on the ground the actor names


@dataclass(frozen=True)
class Accept:
    by: str  # the actor: an authenticated principal's id
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class Reassign:
    unit: str
    reason: str
    by: str
    person: Person | None = None  # default: the unit's responsible person
    working_days: int | None = None  # default: what the routing rules give the matter
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class ExtendDeadline:
    working_days: int
    reason: str
    by: str
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class ChangeResponsible:
    person_id: str
    person_name: str
    contact: str | None
    reason: str
    by: str
    on_behalf_of: str | None = None


class IssueNotAssigned(Exception):
    """A step for a matter this service never assigned."""


class UnknownUnit(Exception):
    """A unit that is not in the registry."""


class WrongState(Exception):
    """The matter is not in a state that allows this step; the message says why."""


def matter_of(reported: IssueReported, routing: Routing) -> Matter:
    return Matter(
        category=reported.category,
        scale=routing.scale_of(reported.category, reported.scale),
        village=reported.village,
        source=reported.source,
    )


def _person(route_responsible: Person | str, unit: str | None, registry: Registry) -> Person:
    if isinstance(route_responsible, Person):
        return route_responsible
    if unit is None or unit not in registry:
        raise UnknownUnit(f"unit {unit!r} is not in the registry of units")
    entry = registry[unit].current
    return Person(id=entry.person_id, name=entry.person_name)


def decide_initial(
    current: Assignment | None,
    reported: IssueReported,
    routing: Routing,
    registry: Registry,
    today: date,
    calendar: WorkingCalendar,
) -> IssueAssigned | None:
    """Assign a newly reported matter by the routing rules; ``None`` if already assigned."""
    if current is not None:
        return None
    matter = matter_of(reported, routing)
    route = routing.route(matter)
    source = responsible_unit(route, matter.village, routing)
    return _assign(
        matter,
        route.unit,
        _person(route.responsible, source, registry),
        route.working_days,
        today,
        calendar,
        assignment_no=1,
        reason=f"routed on report by rule {route.rule_id}: {route.explanation}",
        rule_id=route.rule_id,
        explanation=route.explanation,
        plan=route.plan_template,
        responsible_from=source,
    )


def responsible_unit(route: Route, village: str, routing: Routing) -> str | None:
    """The registry unit the route's responsible person comes from."""
    if route.responsible == "unit_responsible":
        return route.unit
    if route.responsible == "village_secretary":
        return routing.reference.villages[village].branch(village)
    return None


@dataclass(frozen=True)
class Reopening:
    """A visit that found a matter not fixed: a failed look-back of a resolved matter, or
    a failed re-visit of a closed one after a resident's low score."""

    visit: Literal["look-back", "re-visit"]
    visitor: str
    notes: str
    assignment_no: int


def reopening(event: Event) -> Reopening | None:
    """The reopening an event records, if any: the one rule by which a failed look-back
    and a failed re-visit both send the matter back to its unit."""
    if isinstance(event, IssueLookbackFailed):
        return Reopening("look-back", event.visitor, event.notes, event.assignment_no)
    if isinstance(event, IssueRevisitRecorded) and event.reopens:
        return Reopening("re-visit", event.visitor, event.notes, event.assignment_no)
    return None


def decide_reassignment(
    current: Assignment | None,
    visit: Event,
    routing: Routing,
    today: date,
    calendar: WorkingCalendar,
) -> IssueAssigned | None:
    """After a failed look-back, or a failed re-visit, the matter returns to its unit and
    responsible person with a new deadline (the rules' time limit); ``None`` if the visit
    reopens nothing or was already acted on."""
    failed = reopening(visit)
    if failed is None:
        return None  # a passed re-visit (or one from before re-visits reopened matters)
    if current is None:
        raise IssueNotAssigned(f"{failed.visit} failed for a matter that was never assigned")
    if failed.assignment_no != current.assignment_no:
        return None  # a repeat of a failure this service has already acted on
    matter = _matter(current, routing)
    route = routing.route(matter)
    return _assign(
        matter,
        current.unit,
        Person(id=current.person_id, name=current.person_name),
        route.working_days,
        today,
        calendar,
        assignment_no=current.assignment_no + 1,
        reason=f"{failed.visit} failed ({failed.visitor}): {failed.notes}",
        rule_id=current.rule_id,
        explanation=f"returned to its unit after a failed {failed.visit}",
        plan=None,
        responsible_from=current.responsible_unit,
    )


def _matter(current: Assignment, routing: Routing) -> Matter:
    return Matter(
        category=current.category,
        scale=current.scale or routing.scale_of(current.category, None),
        village=current.village,
        source=current.source,
    )


def decide_manual(
    current: Assignment | None,
    command: Reassign,
    routing: Routing,
    registry: Registry,
    today: date,
    calendar: WorkingCalendar,
) -> IssueAssigned:
    """A supervisor (or the town office re-routing a sent-back matter) gives the matter to
    another unit, with a new deadline counted from today."""
    _open(current)
    assert current is not None
    if command.unit not in registry:
        raise UnknownUnit(f"unit {command.unit!r} is not in the registry of units")
    matter = _matter(current, routing)
    days = command.working_days or routing.route(matter).working_days
    person = command.person or _person("unit_responsible", command.unit, registry)
    explanation = f"re-assigned by hand by {command.by}: {command.reason}"
    return _assign(
        matter,
        command.unit,
        person,
        days,
        today,
        calendar,
        assignment_no=current.assignment_no + 1,
        reason=explanation,
        rule_id=MANUAL,
        explanation=explanation,
        plan=None,
        responsible_from=None if command.person else command.unit,
    )


def _assign(
    matter: Matter,
    unit: str,
    person: Person,
    working_days: int,
    today: date,
    calendar: WorkingCalendar,
    *,
    assignment_no: int,
    reason: str,
    rule_id: str | None,
    explanation: str,
    plan: str | None,
    responsible_from: str | None = None,
) -> IssueAssigned:
    deadline = deadline_after(calendar, today, working_days)
    return IssueAssigned(
        unit=unit,
        responsible_person_id=person.id,
        responsible_person_name=person.name,
        deadline=deadline.day,
        working_days=working_days,
        assignment_no=assignment_no,
        reason=reason,
        category=matter.category,
        village=matter.village,
        calendar=deadline.calendar,
        deadline_provisional=deadline.provisional,
        deadline_note=deadline.note,
        plan_template=plan,
        rule_id=rule_id,
        rule_explanation=explanation,
        scale=matter.scale,
        responsible_unit=responsible_from,
        counted_from=today,
        source=matter.source,
    )


def _open(current: Assignment | None) -> None:
    if current is None:
        raise IssueNotAssigned("no such matter assigned")
    if current.status != "assigned":
        raise WrongState(f"the matter is {current.status}, not open with a unit")


def decide_send_back(current: Assignment | None, command: SendBack) -> IssueSentBack:
    """The assigned unit says the matter is not theirs; it stays theirs until re-routed."""
    _open(current)
    assert current is not None
    if command.unit != current.unit:
        raise WrongState(
            f"only the assigned unit ({current.unit}) can send the matter back, not {command.unit}"
        )
    if current.sent_back_reason is not None:
        raise WrongState("the matter was already sent back; the town office re-routes it")
    return IssueSentBack(
        unit=current.unit,
        reason=command.reason,
        sent_back_by=command.by,
        on_behalf_of=command.on_behalf_of,
        assignment_no=current.assignment_no,
        deadline=current.deadline,
    )


def decide_acceptance(current: Assignment | None, command: Accept) -> IssueAccepted:
    """The assigned unit accepts the matter (签收): once per assignment, while it is open
    with the unit and not sent back."""
    _open(current)
    assert current is not None
    if current.sent_back_reason is not None:
        raise WrongState("the matter was sent back; the town office re-routes it")
    if current.accepted_by is not None:
        raise WrongState("the matter was already accepted for this assignment")
    return IssueAccepted(
        unit=current.unit,
        accepted_by=command.by,
        assignment_no=current.assignment_no,
        on_behalf_of=command.on_behalf_of,
    )


def decide_extension(
    current: Assignment | None, command: ExtendDeadline, calendar: WorkingCalendar
) -> IssueDeadlineExtended:
    """A later deadline: the time limit grows by ``working_days``, counted on the calendar
    from the day the matter was assigned (as a recount would)."""
    _open(current)
    assert current is not None
    total = current.working_days + command.working_days
    deadline = deadline_after(calendar, current.assigned_on, total)
    return IssueDeadlineExtended(
        previous_deadline=current.deadline,
        deadline=deadline.day,
        extra_working_days=command.working_days,
        calendar=deadline.calendar,
        provisional=deadline.provisional,
        note=deadline.note,
        reason=command.reason,
        extended_by=command.by,
        on_behalf_of=command.on_behalf_of,
        assignment_no=current.assignment_no,
    )


def decide_deadline_follows_plan(
    current: Assignment | None, plan: IssuePlanSet, calendar: WorkingCalendar
) -> IssueDeadlineExtended | None:
    """A major affair's deadline follows its staged plan: a plan of the current assignment
    that ends after the deadline, and says why (followup refuses such a plan without a
    reason), extends the deadline to its last step's date, as a supervisor's extension
    would (the time limit grows, counted from the day of the assignment). Nothing when the
    plan ends by the deadline, belongs to an earlier assignment, or the matter is not open."""
    if (
        current is None
        or current.status != "assigned"
        or plan.assignment_no != current.assignment_no
        or plan.extend_deadline_reason is None
    ):
        return None
    last = max(m.due for m in plan.milestones)
    if last <= current.deadline:
        return None
    total = working_days_until(calendar, current.assigned_on, last)
    if not calendar.is_working_day(last):
        total += 1  # the next working day: never before the plan's end
    total = max(total, current.working_days + 1)
    deadline = deadline_after(calendar, current.assigned_on, total)
    return IssueDeadlineExtended(
        previous_deadline=current.deadline,
        deadline=deadline.day,
        extra_working_days=total - current.working_days,
        calendar=deadline.calendar,
        provisional=deadline.provisional,
        note=deadline.note,
        reason=plan.extend_deadline_reason,
        extended_by=plan.set_by,
        on_behalf_of=plan.on_behalf_of,
        assignment_no=current.assignment_no,
    )


def decide_responsible_change(
    current: Assignment, changed: UnitResponsibleChanged
) -> IssueResponsibleChanged | None:
    """An open matter whose responsible person comes from the changed unit follows it."""
    if (
        current.status != "assigned"
        or current.responsible_unit != changed.unit
        or current.person_id == changed.person_id
    ):
        return None
    return IssueResponsibleChanged(
        unit=changed.unit,
        previous_person_id=current.person_id,
        previous_person_name=current.person_name,
        person_id=changed.person_id,
        person_name=changed.person_name,
        assignment_no=current.assignment_no,
        reason=f"the responsible person of {changed.unit} changed: {changed.reason}",
    )


def decide_registry_sync(
    files: Mapping[str, Responsible], table: Registry
) -> tuple[list[RegistryRow], list[UnitResponsibleChanged]]:
    """What the reference files say that the registry has not seen yet: units new to the
    registry (registered as the files give them, without an event: the first change of
    their responsible person names the one before), and a new responsible person or
    contact in the files (an event). A change by hand stays until the files change again."""
    new: list[RegistryRow] = []
    events: list[UnitResponsibleChanged] = []
    for code, entry in files.items():
        row = table.get(code)
        seeded = (entry.person_id, entry.person_name, entry.contact)
        if row is None:
            new.append(RegistryRow(entry, *seeded))
            continue
        if seeded == (row.seeded_person_id, row.seeded_person_name, row.seeded_contact):
            continue
        events.append(
            UnitResponsibleChanged(
                unit=code,
                unit_name=entry.name,
                previous_person_id=row.current.person_id,
                previous_person_name=row.current.person_name,
                person_id=entry.person_id,
                person_name=entry.person_name,
                contact=entry.contact,
                reason="the reference files name a new responsible person or contact",
                changed_by=FILES_ACTOR,
            )
        )
    return new, events


def decide_registry_change(
    row: RegistryRow | None, code: str, command: ChangeResponsible
) -> UnitResponsibleChanged | None:
    """A change by hand; ``None`` if it changes nothing."""
    if row is None:
        raise UnknownUnit(f"unknown unit {code!r}")
    contact = command.contact or row.current.contact
    now = row.current
    if (now.person_id, now.person_name, now.contact) == (
        command.person_id,
        command.person_name,
        contact,
    ):
        return None
    return UnitResponsibleChanged(
        unit=code,
        unit_name=now.name,
        previous_person_id=now.person_id,
        previous_person_name=now.person_name,
        person_id=command.person_id,
        person_name=command.person_name,
        contact=contact,
        reason=command.reason,
        changed_by=command.by,
        on_behalf_of=command.on_behalf_of,
    )


def evolve_registry(
    row: RegistryRow | None, event: UnitResponsibleChanged, files: Mapping[str, Responsible]
) -> RegistryRow:
    """The registry row after a change; a change from the files also updates what the
    files said."""
    base = row.current if row else files[event.unit]
    current = base.model_copy(
        update={
            "name": event.unit_name,
            "person_id": event.person_id,
            "person_name": event.person_name,
            "contact": event.contact,
        }
    )
    if row is None or event.changed_by == FILES_ACTOR:
        return RegistryRow(current, event.person_id, event.person_name, event.contact)
    return replace(row, current=current)


def decide_recompute(
    current: Assignment, calendar: WorkingCalendar
) -> IssueDeadlineRecomputed | None:
    """Count a provisional deadline again; an event when it became firm or moved."""
    if not current.deadline_provisional or current.status != "assigned":
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


def evolve(current: Assignment | None, event: Event) -> Assignment | None:
    """The state after one event: an assignment replaces the previous one; a step of an
    earlier assignment, or of a matter never assigned, leaves it as it is."""
    return _evolve(event, current)


@singledispatch
def _evolve(event: Event, current: Assignment | None) -> Assignment | None:
    return current  # an event that does not change an assignment


E = TypeVar("E", bound=Event)
Step = Callable[[E, Assignment], Assignment]


def _of_current(step: Step[E]) -> Callable[[E, Assignment | None], Assignment | None]:
    """Apply ``step`` only to an event of the current assignment."""

    @wraps(step)
    def guarded(event: E, current: Assignment | None) -> Assignment | None:
        if current is None or getattr(event, "assignment_no", None) != current.assignment_no:
            return current
        return step(event, current)

    return guarded


@_evolve.register(IssueAssigned)
def _assigned(event: IssueAssigned, current: Assignment | None) -> Assignment | None:
    # Events from before ``counted_from`` are never folded here (the state is stored);
    # counting from the deadline keeps such a fold total.
    return Assignment(
        category=event.category,
        village=event.village,
        unit=event.unit,
        person_id=event.responsible_person_id,
        person_name=event.responsible_person_name,
        deadline=event.deadline,
        assignment_no=event.assignment_no,
        assigned_on=event.counted_from or event.deadline,
        working_days=event.working_days,
        calendar=event.calendar,
        deadline_provisional=event.deadline_provisional,
        scale=event.scale,
        source=event.source if event.source is not None else (current.source if current else None),
        responsible_unit=event.responsible_unit,
        rule_id=event.rule_id,
        correlation_id=current.correlation_id if current else None,
    )


@_evolve.register(IssueDeadlineRecomputed)
@_of_current
def _recomputed(event: IssueDeadlineRecomputed, current: Assignment) -> Assignment:
    return replace(
        current,
        deadline=event.deadline,
        calendar=event.calendar,
        deadline_provisional=event.provisional,
    )


@_evolve.register(IssueDeadlineExtended)
@_of_current
def _extended(event: IssueDeadlineExtended, current: Assignment) -> Assignment:
    return replace(
        current,
        deadline=event.deadline,
        working_days=current.working_days + event.extra_working_days,
        calendar=event.calendar,
        deadline_provisional=event.provisional,
    )


@_evolve.register(IssueSentBack)
@_of_current
def _sent_back(event: IssueSentBack, current: Assignment) -> Assignment:
    return replace(current, sent_back_reason=event.reason)


@_evolve.register(IssueAccepted)
@_of_current
def _accepted(event: IssueAccepted, current: Assignment) -> Assignment:
    return replace(current, accepted_by=event.accepted_by)


@_evolve.register(IssueResponsibleChanged)
@_of_current
def _responsible_changed(event: IssueResponsibleChanged, current: Assignment) -> Assignment:
    return replace(current, person_id=event.person_id, person_name=event.person_name)


@_evolve.register(IssueResolved)
@_of_current
def _resolved(event: IssueResolved, current: Assignment) -> Assignment:
    return replace(current, status="resolved") if current.status == "assigned" else current


@_evolve.register(IssueLookbackPassed)
@_of_current
def _lookback_passed(event: IssueLookbackPassed, current: Assignment) -> Assignment:
    return replace(current, status="closed") if current.status == "resolved" else current
