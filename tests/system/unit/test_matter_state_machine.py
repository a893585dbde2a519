"""Random lives of matters, on the real use cases and in-memory stores, with events passed
between the services as the bus would: reports, assignments, send-backs, re-assignments,
extensions, progress, resolutions, look-backs, feedback, re-visits (a failed one reopens a
closed matter) and clock jumps across the
official holidays (Spring Festival and National Day 2026). After every step, the
invariants hold: no matter both closed and open, no date on a non-working day, no
escalation without a missed date, no resolution by a unit that was not assigned."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from minqing.services.assignment import handlers as assignment
from minqing.services.assignment import routing
from minqing.services.assignment.domain import (
    ExtendDeadline,
    IssueNotAssigned,
    Reassign,
    SendBack,
    UnknownUnit,
    WrongState,
)
from minqing.services.followup import handlers as followup
from minqing.services.followup.app import load_rules as followup_rules
from minqing.services.followup.domain import RecordLookback, ReportProgress, ResolveIssue
from minqing.services.followup.domain import WrongState as CaseWrongState
from minqing.services.intake import handlers as intake
from minqing.services.intake.domain import ReportIssue
from minqing.services.intake.residents import handlers as residents
from minqing.services.intake.residents.domain import Matter
from minqing.services.intake.residents.notifier import Message
from minqing.shared.contract import reference
from minqing.shared.contract.envelope import Envelope, decode
from minqing.shared.contract.events import (
    IssueAssigned,
    IssueDeadlineExtended,
    IssueDeadlineRecomputed,
    IssueEscalated,
    IssueLookbackDueRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueMilestoneDueRecomputed,
    IssueOverdue,
    IssuePlanSet,
    IssueResolved,
    IssueRevisitRecorded,
    IssueSentBack,
)
from minqing.shared.domain.calendar import add_working_days, official
from minqing.shared.domain.clock import local_date
from minqing.shared.service.settings import REFERENCE_DIR
from tests.support.actors import PRINCIPAL, note_checked
from tests.support.examples import examples
from tests.support.fakes import InMemoryAssignments, InMemoryCases, InMemoryReports, Units
from tests.support.residents import InMemoryResidents

TZ = "Asia/Shanghai"
REF = reference.load(REFERENCE_DIR)
reference.activate(REF)
CALENDAR = official(REFERENCE_DIR)
ASSIGNMENT_RULES = assignment.Rules(
    routing=routing.load(REFERENCE_DIR, REF),
    calendar=CALENDAR,
    timezone=TZ,
    files=REF.registry(),
)
FOLLOWUP_RULES = followup_rules(REFERENCE_DIR, CALENDAR, TZ)
UNITS = sorted(REF.all_units())
# Starting days just before the Spring Festival and National Day holidays of 2026.
STARTS = [
    datetime(2026, 2, 10, 1, 0, tzinfo=UTC),
    datetime(2026, 2, 13, 9, 0, tzinfo=UTC),
    datetime(2026, 9, 25, 2, 0, tzinfo=UTC),
    datetime(2026, 9, 29, 8, 0, tzinfo=UTC),
]
CATEGORIES = ["street_lights", "roads", "bridges", "neighbour_dispute", "farming_help"]
VILLAGES = ["sanqi", "qizhuang", "xuma", "sixing"]
SOURCES = ["visit", "hotline_12345", "letters_visits"]
REFUSED = (
    WrongState,
    CaseWrongState,
    IssueNotAssigned,
    UnknownUnit,
    residents.FeedbackAlreadyGiven,
)


class Collecting:
    """A notifier that delivers every reply, keeping what it sent."""

    name = "test"

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, message: Message) -> None:
        self.sent.append(message)


@dataclass
class Bus:
    """The services on in-memory stores, and a dispatcher passing each committed event to
    every service's routing table, in order, as JetStream would."""

    now: datetime
    intake: Units[InMemoryReports] = field(init=False)
    assignment: Units[InMemoryAssignments] = field(init=False)
    followup: Units[InMemoryCases] = field(init=False)
    residents: Units[InMemoryResidents] = field(init=False)
    log: list[Envelope] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        clock = lambda: self.now  # noqa: E731
        self.intake = Units(InMemoryReports(), service="intake", clock=clock)
        self.assignment = Units(InMemoryAssignments(), service="assignment", clock=clock)
        self.followup = Units(InMemoryCases(), service="followup", clock=clock)
        self.residents = Units(InMemoryResidents(), service="intake", clock=clock)

    def _subscribers(self) -> list[tuple[Units[Any], Any, Any]]:
        return [
            (self.intake, intake.HANDLERS, None),
            (self.residents, residents.REPLY_HANDLERS, None),
            (self.assignment, assignment.HANDLERS, ASSIGNMENT_RULES),
            (self.followup, followup.HANDLERS, FOLLOWUP_RULES),
        ]

    def _new(self) -> list[Envelope]:
        every = [
            e
            for units in (self.intake, self.assignment, self.followup, self.residents)
            for e in units.committed
        ]
        fresh = [e for e in every if e.id not in self.seen]
        self.seen.update(e.id for e in fresh)
        return sorted(fresh, key=lambda e: e.id)  # ULIDs: the order they were recorded

    async def pump(self) -> None:
        """Deliver every committed event to its consumers until nothing new is recorded."""
        while fresh := self._new():
            for envelope in fresh:
                self.log.append(envelope)
                event = decode(envelope)
                for units, table, deps in self._subscribers():
                    handler = table.get(type(event))
                    if handler is not None:
                        async with units() as uow:
                            await handler(event, envelope, uow, deps)
                            await uow.commit()

    @property
    def today(self) -> date:
        return local_date(self.now, TZ)


def events_of(log: list[Envelope], issue_id: str) -> list[Any]:
    return [decode(e) for e in log if e.subject == issue_id]


class Matters(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.bus = Bus(STARTS[0])
        self.issues: list[str] = []
        self.notifier = Collecting()
        self.answered: set[str] = set()
        self.actors_checked = 0  # how much of the log the actor invariant has read

    @initialize(start=st.sampled_from(STARTS))
    def start(self, start: datetime) -> None:
        self.bus.now = start

    def run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)

    async def _attempt(self, units: Units[Any], call: Any) -> bool:
        """Run a use case; a refusal must record nothing."""
        before = len(units.committed)
        try:
            await call
        except REFUSED:
            assert len(units.committed) == before
            return False
        await self.bus.pump()
        return True

    # ------------------------------------------------------------------ steps

    @precondition(lambda self: len(self.issues) < 5)
    @rule(
        category=st.sampled_from(CATEGORIES),
        village=st.sampled_from(VILLAGES),
        source=st.sampled_from(SOURCES),
    )
    def report(self, category: str, village: str, source: str) -> None:
        command = ReportIssue(
            title=f"{category} in {village} #{len(self.issues)}",
            description="reported",
            category=category,
            village=village,
            source=source,
            reporter_name="Wang Wu",
            reporter_phone="13912345678",
        )

        async def go() -> None:
            accepted = await intake.report_issue(
                self.bus.intake, command, policy=intake.Policy(duplicate_threshold=101)
            )
            store = self.bus.residents.store
            store.matters[accepted.issue_id] = Matter(
                accepted.issue_id,
                command.title,
                REF.categories[category].group,
                closed=False,
                resolved=False,
            )
            store.reporters_of[accepted.issue_id] = [f"rpt_{accepted.report_id}"]
            store.contacts[f"rpt_{accepted.report_id}"] = ("Wang Wu", "13912345678")
            self.issues.append(accepted.issue_id)
            await self.bus.pump()

        self.run(go())

    def _pick(self, data: st.DataObject, status: str) -> str:
        """A matter, mostly one in ``status`` (so that steps that need it get a chance)."""
        cases = self.bus.followup.store.rows
        fitting = [i for i in self.issues if i in cases and cases[i].case.status == status]
        if fitting and data.draw(st.integers(0, 3)):
            return data.draw(st.sampled_from(fitting))
        return data.draw(st.sampled_from(self.issues))

    def _assignment(self, issue_id: str) -> Any:
        return self.bus.assignment.store.rows.get(issue_id)

    @precondition(lambda self: self.issues)
    @rule(data=st.data(), own=st.integers(0, 3))
    def send_back(self, data: st.DataObject, own: int) -> None:
        issue_id = data.draw(st.sampled_from(self.issues))
        current = self._assignment(issue_id)
        unit = current.unit if own and current else data.draw(st.sampled_from(UNITS))
        command = SendBack(unit=unit, reason="not ours", by=f"person:{unit}-clerk")
        call = assignment.send_back(self.bus.assignment, ASSIGNMENT_RULES, issue_id, command)
        self.run(self._attempt(self.bus.assignment, call))

    @precondition(lambda self: self.issues)
    @rule(data=st.data(), unit=st.sampled_from(UNITS))
    def reassign(self, data: st.DataObject, unit: str) -> None:
        issue_id = data.draw(st.sampled_from(self.issues))
        command = Reassign(unit=unit, reason="belongs there", by="person:town-office")
        call = assignment.reassign(self.bus.assignment, ASSIGNMENT_RULES, issue_id, command)
        self.run(self._attempt(self.bus.assignment, call))

    @precondition(lambda self: self.issues)
    @rule(data=st.data(), days=st.integers(1, 15))
    def extend(self, data: st.DataObject, days: int) -> None:
        issue_id = data.draw(st.sampled_from(self.issues))
        command = ExtendDeadline(working_days=days, reason="holiday", by="person:supervisor")
        call = assignment.extend_deadline(self.bus.assignment, ASSIGNMENT_RULES, issue_id, command)
        self.run(self._attempt(self.bus.assignment, call))

    @precondition(lambda self: self.issues)
    @rule(data=st.data(), milestone=st.integers(1, 5), done=st.booleans())
    def progress(self, data: st.DataObject, milestone: int, done: bool) -> None:
        issue_id = self._pick(data, "assigned")
        command = ReportProgress(
            milestone=milestone, note="on it", done=done, reported_by="person:x"
        )
        call = followup.report_progress(self.bus.followup, FOLLOWUP_RULES, issue_id, command)
        self.run(self._attempt(self.bus.followup, call))

    @precondition(lambda self: self.issues)
    @rule(data=st.data(), own=st.integers(0, 3))
    def resolve(self, data: st.DataObject, own: int) -> None:
        issue_id = self._pick(data, "assigned")
        current = self._assignment(issue_id)
        unit = current.unit if own and current else data.draw(st.sampled_from(UNITS))
        command = ResolveIssue(unit=unit, summary="done", resolved_by=f"person:{unit}-worker")
        call = followup.resolve_issue(self.bus.followup, FOLLOWUP_RULES, issue_id, command)
        self.run(self._attempt(self.bus.followup, call))

    @precondition(lambda self: self.issues)
    @rule(data=st.data(), passed=st.booleans(), resolver=st.integers(0, 3))
    def look_back(self, data: st.DataObject, passed: bool, resolver: int) -> None:
        issue_id = self._pick(data, "resolved")
        tracked = self.bus.followup.store.rows.get(issue_id)
        visitor = "person:grid-worker-7"
        if resolver == 0 and tracked is not None and tracked.case.resolved_by:
            visitor = tracked.case.resolved_by  # may not pass its own work
        command = RecordLookback(
            outcome="passed" if passed else "failed", visitor=visitor, notes="looked"
        )
        call = followup.record_lookback(self.bus.followup, FOLLOWUP_RULES, issue_id, command)
        self.run(self._attempt(self.bus.followup, call))

    @precondition(lambda self: self.issues)
    @rule(data=st.data(), passed=st.booleans())
    def revisit(self, data: st.DataObject, passed: bool) -> None:
        """Line staff go back where a resident's low score sent them (a closed matter's
        re-visit is recorded: passed, it stays closed; failed, it is reopened and goes back
        to its unit as after a failed look-back), else to any matter."""
        cases = self.bus.followup.store.rows
        waiting = [i for i in self.issues if i in cases and cases[i].case.revisit_reason]
        issue_id = data.draw(st.sampled_from(waiting or self.issues))
        command = RecordLookback(
            outcome="passed" if passed else "failed", visitor="person:grid-worker-7", notes="back"
        )
        call = followup.record_lookback(self.bus.followup, FOLLOWUP_RULES, issue_id, command)
        self.run(self._attempt(self.bus.followup, call))

    @precondition(lambda self: self.issues)
    @rule(score=st.integers(1, 5), data=st.data())
    def feedback(self, score: int, data: st.DataObject) -> None:
        async def go() -> None:
            await residents.send_due_replies(
                self.bus.residents, self.notifier, residents.ReplyPolicy()
            )
            await self.bus.pump()
            sent = [
                r
                for r in self.bus.residents.store.replies.values()
                if r.status == "sent" and r.new.reply_id not in self.answered
            ]
            if not sent:
                return
            reply = data.draw(st.sampled_from(sent))
            taken = await residents.give_feedback(
                self.bus.residents, reply.new.token, score, "seen"
            )
            self.answered.add(reply.new.reply_id)
            assert taken.revisit_flagged == (score <= 2)
            await self.bus.pump()

        self.run(go())

    @rule(days=st.integers(0, 12), hours=st.integers(0, 23))
    def clock_jumps(self, days: int, hours: int) -> None:
        self.bus.now += timedelta(days=days, hours=hours)

        async def go() -> None:
            await followup.check_deadlines(self.bus.followup, FOLLOWUP_RULES, self.bus.today)
            await self.bus.pump()

        self.run(go())

    # ------------------------------------------------------------------ invariants

    @invariant()
    def no_matter_both_closed_and_open(self) -> None:
        for issue_id in self.issues:
            steps = [
                e
                for e in events_of(self.bus.log, issue_id)
                if isinstance(
                    e, IssueAssigned | IssueResolved | IssueLookbackPassed | IssueLookbackFailed
                )
                or (isinstance(e, IssueRevisitRecorded) and e.reopens)  # a failed re-visit
            ]
            closed = bool(steps) and isinstance(steps[-1], IssueLookbackPassed)
            assigned = self._assignment(issue_id)
            case = self.bus.followup.store.rows[issue_id].case
            _, status = self.bus.intake.store.matters[issue_id]
            assert (status.status == "closed") == closed, (issue_id, status)
            assert (case.status == "closed") == closed, (issue_id, case.status)
            assert (assigned.status == "closed") == closed, (issue_id, assigned.status)
            # closed again only after a failed re-visit reopened it
            closes = [i for i, e in enumerate(steps) if isinstance(e, IssueLookbackPassed)]
            for before, after in itertools.pairwise(closes):
                assert any(isinstance(e, IssueRevisitRecorded) for e in steps[before:after]), (
                    issue_id
                )
            if closed:
                assert not any(
                    isinstance(e, IssueAssigned | IssueResolved)
                    for e in events_of(self.bus.log, issue_id)[self._index_of_close(issue_id) + 1 :]
                )

    @invariant()
    def a_revisit_waits_only_on_a_resolved_or_closed_matter(self) -> None:
        for issue_id, tracked in self.bus.followup.store.rows.items():
            if tracked.case.revisit_reason is not None:
                assert tracked.case.status in ("resolved", "closed"), issue_id
                assert tracked.case.revisit_due is not None, issue_id

    def _index_of_close(self, issue_id: str) -> int:
        """Where the matter was last closed."""
        events = events_of(self.bus.log, issue_id)
        return max(i for i, e in enumerate(events) if isinstance(e, IssueLookbackPassed))

    @invariant()
    def every_actor_is_a_principal(self) -> None:
        """Who did it is an authenticated principal (or a resident), as the use cases set
        it: never a name typed in a body."""
        for envelope in self.bus.log[self.actors_checked :]:
            assert PRINCIPAL.fullmatch(envelope.actor), (envelope.type, envelope.actor)
        self.actors_checked = len(self.bus.log)

    def teardown(self) -> None:
        # The types this run checked count towards every type checked (tests/conftest.py).
        note_checked({envelope.short_type for envelope in self.bus.log})

    @invariant()
    def no_date_on_a_non_working_day(self) -> None:
        for envelope in self.bus.log:
            event = decode(envelope)
            days: list[date] = []
            if isinstance(event, IssueAssigned | IssueDeadlineExtended | IssueDeadlineRecomputed):
                days.append(event.deadline)
            if isinstance(event, IssueResolved | IssueLookbackDueRecomputed):
                days.append(event.lookback_due)
            if isinstance(event, IssuePlanSet):
                days += [m.due for m in event.milestones]
            if isinstance(event, IssueMilestoneDueRecomputed):
                days.append(event.due)
            for day in days:
                assert CALENDAR.is_working_day(day), (event.TYPE, day)

    @invariant()
    def every_escalation_follows_a_missed_date(self) -> None:
        for issue_id in self.issues:
            events = events_of(self.bus.log, issue_id)
            envelopes = [e for e in self.bus.log if e.subject == issue_id]
            for i, (event, envelope) in enumerate(zip(events, envelopes, strict=True)):
                before = events[:i]
                if isinstance(event, IssueOverdue):
                    assert local_date(envelope.time, TZ) > event.due
                if not isinstance(event, IssueEscalated):
                    continue
                if event.kind == "lookback_failed":
                    failed = [e for e in before if isinstance(e, IssueLookbackFailed)]
                    assert len(failed) >= 2
                    assert isinstance(before[-1], IssueLookbackFailed)
                    continue
                step = FOLLOWUP_RULES.ladder.steps[event.level - 1]
                step_day = add_working_days(CALENDAR, event.due, step.after_working_days)
                assert local_date(envelope.time, TZ) > step_day, (issue_id, event)
                assert event.level == 1 or any(
                    isinstance(e, IssueEscalated)
                    and (e.kind, e.due, e.milestone, e.level)
                    == (event.kind, event.due, event.milestone, event.level - 1)
                    for e in before
                ), (issue_id, event)
                assert any(
                    isinstance(e, IssueOverdue)
                    and e.kind == event.kind
                    and e.due == event.due
                    and e.milestone == event.milestone
                    # a milestone's plan (and its clock) survives a re-assignment
                    and (e.kind == "milestone" or e.assignment_no == event.assignment_no)
                    for e in before
                ), (issue_id, event)

    @invariant()
    def a_major_affairs_deadline_follows_its_plan(self) -> None:
        """While its assignment stands, a matter whose plan asked for it is due no earlier
        than the plan's last step, in assignment and in followup alike."""
        for issue_id in self.issues:
            current = self._assignment(issue_id)
            plans = [e for e in events_of(self.bus.log, issue_id) if isinstance(e, IssuePlanSet)]
            if current is None or current.status != "assigned" or not plans:
                continue
            plan = plans[-1]
            if plan.assignment_no != current.assignment_no or not plan.extend_deadline_reason:
                continue
            last = max(m.due for m in plan.milestones)
            assert current.deadline >= last, (issue_id, current.deadline, last)
            case = self.bus.followup.store.rows[issue_id].case
            assert case.deadline == current.deadline, (issue_id, case.deadline, current)

    @invariant()
    def resolved_or_sent_back_only_by_the_assigned_unit(self) -> None:
        for issue_id in self.issues:
            latest: IssueAssigned | None = None
            sent_back = False
            for event in events_of(self.bus.log, issue_id):
                if isinstance(event, IssueAssigned):
                    latest, sent_back = event, False
                if isinstance(event, IssueResolved):
                    assert latest is not None and event.unit == latest.unit, (issue_id, event)
                    assert event.assignment_no == latest.assignment_no
                if isinstance(event, IssueSentBack):
                    assert latest is not None and event.unit == latest.unit, (issue_id, event)
                    assert not sent_back, "sent back twice in one assignment"
                    sent_back = True


Matters.TestCase.settings = settings(
    max_examples=examples(80),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMatters = Matters.TestCase


def test_the_calendar_knows_the_holidays_the_machine_crosses() -> None:
    """The jumps above cross real holidays: the official calendar has them off."""
    assert not CALENDAR.is_working_day(date(2026, 2, 17))  # Spring Festival
    assert not CALENDAR.is_working_day(date(2026, 10, 1))  # National Day
    assert CALENDAR.knows(date(2026, 10, 1))
