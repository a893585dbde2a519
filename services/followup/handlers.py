"""Followup's use cases: track assignments, accept resolutions and look-back visits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal, Protocol

from minqing.services.followup import plans
from minqing.services.followup.domain import (
    LOOKBACK_WORKING_DAYS,
    Case,
    RecordFunding,
    RecordLookback,
    ReportProgress,
    ResolveIssue,
    UnknownIssue,
    awaits_revisit,
    check_line_staff,
    decide_deadline_checks,
    decide_funding,
    decide_lookback,
    decide_lookback_escalation,
    decide_lookback_recompute,
    decide_milestone_recompute,
    decide_plan,
    decide_progress,
    decide_resolution,
    decide_revisit,
    evolve,
    flag_revisit,
)
from minqing.services.followup.escalation import Ladder
from minqing.services.followup.lookback import Reviewers
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import (
    Event,
    FundingSource,
    FundingStatus,
    IssueAssigned,
    IssueDeadlineExtended,
    IssueDeadlineRecomputed,
    IssueReported,
    IssueResponsibleChanged,
    IssueRevisitFlagged,
)
from minqing.shared.domain.calendar import WorkingCalendar, deadline_after
from minqing.shared.domain.clock import local_date
from minqing.shared.identity.policy import Reach, anywhere
from minqing.shared.identity.principal import service
from minqing.shared.messaging.dispatch import Handlers
from minqing.shared.persistence.uow import UnitOfWork, UowFactory

ACTOR = service("followup").id  # what it does on its own: deadlines, recounts
# The plan a routing rule names for a major affair sets its time: its deadline follows it.
FOLLOWS_TEMPLATE = "a major affair's deadline follows its staged plan ({template})"
log = logging.getLogger(__name__)


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
        """The cases whose look-back due date, or a milestone's due date, is provisional,
        locked until commit."""
        ...

    async def past_due(self, today: date) -> list[tuple[str, Tracked]]:
        """Cases waiting for a resolution, a look-back or a milestone that was due before
        ``today``, locked until commit."""
        ...

    async def fund_totals(self) -> list[FundTotal]:
        """The money of every matter, summed by source and status."""
        ...

    async def by_external_ref(self, source: str, external_ref: str) -> str | None:
        """The matter ``source`` reported with its own ticket id ``external_ref``."""
        ...

    async def awaiting_lookback(
        self, unit: str, reviewed: Sequence[str], villages: Sequence[str]
    ) -> list[tuple[str, Case]]:
        """Matters whose look-back, or re-visit, falls to ``unit``'s line staff."""
        ...


@dataclass(frozen=True)
class FundTotal:
    source: FundingSource
    status: FundingStatus
    amount: Decimal
    entries: int
    matters: int


@dataclass(frozen=True)
class Rules:
    """What followup decides with: the calendar, the town's time zone, the escalation
    ladder, the plan templates, who looks back at whose work, and the units' names."""

    calendar: WorkingCalendar
    timezone: str
    ladder: Ladder
    plans: plans.Plans
    reviewers: Reviewers
    unit_names: dict[str, str]
    all_units: tuple[str, ...] = ()  # town offices and village branches


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
        after = Tracked(new, cause.id, correlation)
        await uow.store.save(cause.subject, after)
        if isinstance(event, IssueAssigned) and event.plan_template:
            await _plan_from_template(uow, rules, cause, event, after)


async def on_revisit_flagged(
    event: IssueRevisitFlagged, cause: Envelope, uow: UnitOfWork[Cases], rules: Rules
) -> None:
    """A resident's low score: line staff go back within 7 working days."""
    tracked = await uow.store.get(cause.subject)
    if tracked is None:
        return
    flagged = local_date(cause.time, rules.timezone)
    due = deadline_after(rules.calendar, flagged, LOOKBACK_WORKING_DAYS).day
    reason = f"score {event.score}: {event.reason}"
    new = flag_revisit(tracked.case, reason, due)
    if new is not None and new != tracked.case:
        await uow.store.save(cause.subject, Tracked(new, cause.id, tracked.correlation_id))


async def _plan_from_template(
    uow: UnitOfWork[Cases], rules: Rules, cause: Envelope, event: IssueAssigned, tracked: Tracked
) -> None:
    """An assignment naming a plan template gives the matter that plan, counted from the
    day it was assigned, unless it has that plan already (a re-assignment keeps it)."""
    name = event.plan_template
    template = rules.plans.plans.get(name or "")
    if template is None:
        log.warning("issue %s: unknown plan template %r, no plan set", cause.subject, name)
        return
    if tracked.case.plan_template == name and tracked.case.milestones:
        return
    start = local_date(cause.time, rules.timezone)
    planned = decide_plan(
        tracked.case,
        plans.milestones(
            plans.stages_of(template), start, rules.calendar, _people(rules, tracked.case)
        ),
        template=name,
        counted_from=start,
        calendar=rules.calendar.name,
        set_by=ACTOR,
        extend_deadline_reason=FOLLOWS_TEMPLATE.format(template=name),
    )
    await _record_chained(uow, cause.subject, tracked, [planned], ACTOR)


def _people(rules: Rules, case: Case) -> plans.Stakeholders:
    unit = case.unit or ""
    return plans.Stakeholders(
        unit=unit,
        unit_name=rules.unit_names.get(unit, unit),
        secretary_id=case.responsible_person_id,
        secretary_name=case.responsible_person_name,
    )


async def load_case(
    units: UowFactory[Cases], issue_id: str, reach: Reach = anywhere
) -> Tracked | None:
    """The matter's case, if the caller reaches it."""
    async with units() as uow:
        tracked = await uow.store.get(issue_id, lock=False)
    return tracked if tracked is not None and reach(tracked.case.unit, None) else None


async def resolve_issue(
    units: UowFactory[Cases],
    rules: Rules,
    issue_id: str,
    command: ResolveIssue,
    reach: Reach = anywhere,
) -> Recorded:
    """The assigned unit reports the matter solved (cancellation)."""
    async with units() as uow:
        recorded = await resolve_in(uow, rules, issue_id, command, reach)
        await uow.commit()
    return recorded


async def resolve_in(
    uow: UnitOfWork[Cases],
    rules: Rules,
    issue_id: str,
    command: ResolveIssue,
    reach: Reach = anywhere,
) -> Recorded:
    """``resolve_issue`` inside the caller's unit of work (no commit): a consumer's batch."""
    return await _decide_in(
        uow,
        rules,
        issue_id,
        command.resolved_by or command.unit,
        reach,
        lambda case, today: [
            decide_resolution(
                case,
                command,
                today,
                rules.calendar,
                lookback_unit=rules.reviewers.of(command.unit),
            )
        ],
    )


async def record_lookback(
    units: UowFactory[Cases],
    rules: Rules,
    issue_id: str,
    command: RecordLookback,
    reach: Reach = anywhere,
) -> Recorded:
    """Line staff record the look-back visit: passed closes the loop, failed reopens it,
    and a second failure escalates. On a closed matter a resident sent them back to, it
    records the re-visit: passed, the matter stays closed; failed, it is reopened and
    counts as a failed look-back."""

    def decide(case: Case | None, today: date) -> list[Event]:
        visit: Event
        if case is not None and awaits_revisit(case):
            visit = decide_revisit(case, command, today)
        else:
            visit = decide_lookback(case, command, today)
        assert case is not None  # deciding on an unknown matter raises UnknownIssue
        unit = lookback_unit_of(case, rules)
        check_line_staff(command, unit, rules.unit_names.get(unit, unit))
        escalated = decide_lookback_escalation(visit, case, rules.ladder)
        return [visit, escalated] if escalated else [visit]

    return await _decide_and_record(units, rules, issue_id, command.visitor, decide, reach)


def lookback_unit_of(case: Case, rules: Rules) -> str:
    """The unit whose line staff look back at the matter (as its resolution named it; on
    matters resolved before that was recorded, as lookback.toml says now)."""
    return case.lookback_unit or rules.reviewers.of(case.unit or "")


@dataclass(frozen=True)
class LookbackTask:
    """One visit on a line staff member's list: a look-back due, or a re-visit a
    resident's low score asked for (on a closed matter; on one awaiting its look-back, the
    look-back answers it and ``revisit_reason`` says so)."""

    issue_id: str
    kind: Literal["lookback", "revisit"]
    due: date
    case: Case


async def lookbacks_due(
    units: UowFactory[Cases], rules: Rules, unit: str, villages: Sequence[str]
) -> list[LookbackTask]:
    """What ``unit``'s line staff (in ``villages``; all when none) are to visit, the
    earliest due first."""
    reviewed = [u for u in rules.all_units if rules.reviewers.of(u) == unit]
    async with units() as uow:
        found = await uow.store.awaiting_lookback(unit, reviewed, villages)
    tasks = [_task(issue_id, case) for issue_id, case in found]
    return sorted(tasks, key=lambda t: (t.due, t.issue_id))


def _task(issue_id: str, case: Case) -> LookbackTask:
    if case.status == "resolved" and case.lookback_due is not None:
        return LookbackTask(issue_id, "lookback", case.lookback_due, case)
    assert case.revisit_due is not None  # a closed matter is listed for its re-visit only
    return LookbackTask(issue_id, "revisit", case.revisit_due, case)


@dataclass(frozen=True)
class SetPlan:
    """A supervisor sets the plan: a template by name, or the stages themselves; a plan
    that ends after the deadline needs the reason for the deadline to follow it."""

    set_by: str
    template: str | None = None
    stages: tuple[plans.StageRequest, ...] = ()
    extend_deadline_reason: str | None = None
    on_behalf_of: str | None = None


async def set_plan(
    units: UowFactory[Cases],
    rules: Rules,
    issue_id: str,
    command: SetPlan,
    reach: Reach = anywhere,
) -> Recorded:
    """A supervisor sets or changes the plan of an assigned matter, counted from today."""
    stages = list(command.stages)
    if command.template is not None:
        template = rules.plans.plans.get(command.template)
        if template is None:
            known = ", ".join(sorted(rules.plans.plans))
            raise UnknownTemplate(f"unknown plan template {command.template!r}; known: {known}")
        stages = plans.stages_of(template)

    def decide(case: Case | None, today: date) -> list[Event]:
        if case is None:
            raise UnknownIssue("no such matter")
        planned = plans.milestones(stages, today, rules.calendar, _people(rules, case))
        return [
            decide_plan(
                case,
                planned,
                template=command.template,
                counted_from=today,
                calendar=rules.calendar.name,
                set_by=command.set_by,
                extend_deadline_reason=command.extend_deadline_reason,
                on_behalf_of=command.on_behalf_of,
            )
        ]

    return await _decide_and_record(units, rules, issue_id, command.set_by, decide, reach)


class UnknownTemplate(ValueError):
    """No plan template of that name in plans.toml."""


async def report_progress(
    units: UowFactory[Cases],
    rules: Rules,
    issue_id: str,
    command: ReportProgress,
    reach: Reach = anywhere,
) -> Recorded:
    """Progress on one milestone of the plan."""
    async with units() as uow:
        recorded = await progress_in(uow, rules, issue_id, command, reach)
        await uow.commit()
    return recorded


async def progress_in(
    uow: UnitOfWork[Cases],
    rules: Rules,
    issue_id: str,
    command: ReportProgress,
    reach: Reach = anywhere,
) -> Recorded:
    """``report_progress`` inside the caller's unit of work (no commit)."""
    return await _decide_in(
        uow,
        rules,
        issue_id,
        command.reported_by,
        reach,
        lambda case, _: [decide_progress(case, command)],
    )


async def record_funding(
    units: UowFactory[Cases],
    rules: Rules,
    issue_id: str,
    command: RecordFunding,
    reach: Reach = anywhere,
) -> Recorded:
    """Money for a matter: a new entry, or a new status of one."""
    return await _decide_and_record(
        units,
        rules,
        issue_id,
        command.recorded_by,
        lambda case, _: [decide_funding(case, command)],
        reach,
    )


async def fund_totals(units: UowFactory[Cases]) -> list[FundTotal]:
    async with units() as uow:
        return await uow.store.fund_totals()


async def _decide_and_record(
    units: UowFactory[Cases],
    rules: Rules,
    issue_id: str,
    actor: str,
    decide: Callable[[Case | None, date], list[Event]],
    reach: Reach = anywhere,
) -> Recorded:
    """Load and lock the case, decide, then save the new case and its events in one
    commit; the answer names the first event."""
    async with units() as uow:
        recorded = await _decide_in(uow, rules, issue_id, actor, reach, decide)
        await uow.commit()
    return recorded


async def _decide_in(
    uow: UnitOfWork[Cases],
    rules: Rules,
    issue_id: str,
    actor: str,
    reach: Reach,
    decide: Callable[[Case | None, date], list[Event]],
) -> Recorded:
    """Load and lock the case, decide, record the events and save the case in ``uow``.
    A matter out of the caller's ``reach`` is decided on as an unknown one."""
    tracked = await uow.store.get(issue_id)
    if tracked is not None and not reach(tracked.case.unit, None):
        tracked = None
    events = decide(tracked.case if tracked else None, local_date(uow.now, rules.timezone))
    assert tracked is not None  # deciding on an unknown matter raises UnknownIssue
    first = await _record_chained(uow, issue_id, tracked, events[:1], actor)
    after = await _record_chained(uow, issue_id, first, events[1:], actor)
    return Recorded(event_id=first.last_event_id, case=after.case)


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
    """Count provisional look-back and milestone due dates again on the calendar as it is
    now; each change is an event. Returns how many."""
    changed = 0
    async with units() as uow:
        for issue_id, tracked in await uow.store.provisional():
            lookback = decide_lookback_recompute(tracked.case, rules.calendar)
            events: list[Event] = [lookback] if lookback is not None else []
            events += decide_milestone_recompute(tracked.case, rules.calendar)
            await _record_chained(uow, issue_id, tracked, events, ACTOR)
            changed += len(events)
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
    IssueResponsibleChanged: on_issue_event,
    IssueRevisitFlagged: on_revisit_flagged,
}
