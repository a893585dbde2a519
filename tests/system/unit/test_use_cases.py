"""Every service's use cases, run against an in-memory unit of work: no NATS, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from minqing.services.assignment import routing
from minqing.services.assignment.handlers import HANDLERS as ASSIGNMENT
from minqing.services.assignment.handlers import Rules as AssignmentRules
from minqing.services.assignment.handlers import (
    on_issue_reported,
    on_visit,
    recompute_deadlines,
)
from minqing.services.followup.app import load_rules
from minqing.services.followup.domain import RecordLookback, ResolveIssue, WrongState
from minqing.services.followup.handlers import HANDLERS as FOLLOWUP
from minqing.services.followup.handlers import Rules as FollowupRules
from minqing.services.followup.handlers import (
    Tracked,
    check_deadlines,
    on_issue_event,
    record_lookback,
    resolve_issue,
)
from minqing.services.intake.domain import ReportIssue
from minqing.services.intake.handlers import (
    IdempotencyKeyReused,
    MatterStatus,
    NotADuplicate,
    Policy,
    report_issue,
    split_duplicate,
)
from minqing.shared.contract import reference
from minqing.shared.contract.envelope import Envelope, wrap
from minqing.shared.contract.events import (
    IssueAssigned,
    IssueDeadlineExtended,
    IssueDeadlineRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssuePlanSet,
    IssueReported,
    IssueResolved,
    IssueResponsibleChanged,
    IssueRevisitFlagged,
    IssueRevisitRecorded,
)
from minqing.shared.domain.calendar import WeekdayCalendar, WorkingCalendar
from minqing.shared.messaging.consumer import Rejected
from minqing.shared.service.settings import REFERENCE_DIR
from tests.support.fakes import (
    InMemoryAssignments,
    InMemoryCases,
    InMemoryReports,
    InMemoryUnitOfWork,
    Units,
)

FRIDAY_MORNING = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 in Shihu
TZ = "Asia/Shanghai"


def clock() -> datetime:
    return FRIDAY_MORNING


def command(**changes: object) -> ReportIssue:
    fields: dict[str, object] = {
        "title": "Street lights out",
        "description": "Six lamps dark on Shiguan Road",
        "category": "street_lights",
        "village": "shihu",
        "source": "grid_center",
        "reporter_name": "Zhang San",
        "reporter_phone": "13800001234",
    }
    return ReportIssue(**{**fields, **changes})  # type: ignore[arg-type]


def as_published(event: IssueReported | IssueAssigned | IssueLookbackFailed) -> Envelope:
    return wrap(event, issue_id="issue-1", service="x", actor="x", time=FRIDAY_MORNING)


# ---------------------------------------------------------------------------------- intake


async def test_a_report_records_one_event_and_keeps_the_contact_apart() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)

    accepted = await report_issue(units, command())

    [event] = units.committed
    assert event.type == "minqing.issue.reported" and event.subject == accepted.issue_id
    assert "Zhang San" not in event.to_json().decode()
    assert list(units.store.contacts.values()) == [("Zhang San", "13800001234")]
    assert event.data["reporter_ref"] in units.store.contacts


async def test_a_retry_with_the_same_key_records_nothing_new() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    first = await report_issue(units, command(), idempotency_key="k1", request_hash="h1")

    again = await report_issue(units, command(), idempotency_key="k1", request_hash="h1")

    assert (again.issue_id, again.created) == (first.issue_id, False)
    assert len(units.committed) == 1


async def test_the_same_key_with_another_body_is_refused() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    await report_issue(units, command(), idempotency_key="k1", request_hash="h1")

    with pytest.raises(IdempotencyKeyReused):
        await report_issue(units, command(), idempotency_key="k1", request_hash="h2")


async def test_the_same_senders_ticket_id_twice_is_the_same_matter() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    first = await report_issue(units, command(external_ref="HL-1", source="hotline_12345"))

    again = await report_issue(
        units, command(external_ref="HL-1", source="hotline_12345", title="changed")
    )

    assert (again.issue_id, again.created) == (first.issue_id, False)
    assert len(units.committed) == 1
    assert units.committed[0].data["external_ref"] == "HL-1"


async def test_another_senders_ticket_id_of_the_same_value_is_another_report() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    await report_issue(units, command(external_ref="T-1", source="hotline_12345"))

    other = await report_issue(
        units, command(external_ref="T-1", source="grid_center", title="Something else")
    )

    assert other.created and other.duplicate_of is None


async def test_an_alike_report_joins_the_open_matter_with_its_reporter() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    first = await report_issue(units, command(title="石官路路灯不亮"))

    second = await report_issue(
        units, command(title="石官路路灯不亮了", reporter_name="Li Si", source="visit")
    )

    assert second.duplicate_of == first.issue_id == second.issue_id
    assert second.report_id != first.report_id
    duplicate = units.committed[-1]
    assert duplicate.type == "minqing.issue.duplicate_reported"
    assert duplicate.subject == first.issue_id
    assert duplicate.data["reporter_ref"] in units.store.contacts
    assert duplicate.data["reporter_phone_masked"] == "138****1234"
    assert len(units.store.matters) == 1


async def test_an_alike_report_in_another_village_or_category_is_a_matter_of_its_own() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    first = await report_issue(units, command(title="石官路路灯不亮"))

    other_village = await report_issue(units, command(title="石官路路灯不亮", village="xuma"))
    other_category = await report_issue(units, command(title="石官路路灯不亮", category="roads"))

    assert len({first.issue_id, other_village.issue_id, other_category.issue_id}) == 3


async def test_a_closed_matter_takes_no_duplicates() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    first = await report_issue(units, command(title="石官路路灯不亮"))
    await units.store.set_status(first.issue_id, MatterStatus("closed", "done"), FRIDAY_MORNING)

    again = await report_issue(units, command(title="石官路路灯不亮"))

    assert again.duplicate_of is None and again.issue_id != first.issue_id


async def test_the_threshold_is_policy() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    await report_issue(units, command(title="石官路路灯不亮"))

    never = Policy(duplicate_threshold=101)
    again = await report_issue(units, command(title="石官路路灯不亮"), policy=never)

    assert again.duplicate_of is None


async def test_a_wrong_merge_is_split_back_into_its_own_matter() -> None:
    units = Units(InMemoryReports(), service="intake", clock=clock)
    first = await report_issue(units, command(title="石官路路灯不亮"))
    merged = await report_issue(units, command(title="石官路路灯不亮了", reporter_name="Li Si"))

    split = await split_duplicate(
        units, first.issue_id, merged.report_id, reason="another lamp", actor="supervisor-1"
    )

    assert split.issue_id == merged.report_id != first.issue_id
    undo, reported = units.committed[-2:]
    assert (undo.type, undo.subject) == ("minqing.issue.duplicate_split", first.issue_id)
    assert undo.data["new_issue_id"] == split.issue_id
    assert (reported.type, reported.subject) == ("minqing.issue.reported", split.issue_id)
    assert reported.data["split_from"] == first.issue_id
    assert reported.data["title"] == "石官路路灯不亮了"
    with pytest.raises(NotADuplicate):
        await split_duplicate(units, first.issue_id, merged.report_id, reason="x", actor="y")


# ------------------------------------------------------------------------------ assignment


def assignment_rules(calendar: WorkingCalendar | None = None) -> AssignmentRules:
    """The shipped routing rules and registry (street lights: five working days)."""
    ref = reference.load(REFERENCE_DIR)
    return AssignmentRules(
        routing=routing.load(REFERENCE_DIR, ref),
        calendar=calendar or WeekdayCalendar(),
        timezone=TZ,
        files=ref.registry(),
    )


def assignment_uow() -> InMemoryUnitOfWork[InMemoryAssignments]:
    return InMemoryUnitOfWork(InMemoryAssignments(), service="assignment", now=FRIDAY_MORNING)


def reported_event(category: str = "street_lights") -> IssueReported:
    return IssueReported(
        title="t", description="d", category=category, village="shihu", source="visit"
    )


async def test_a_reported_matter_is_assigned_with_a_deadline_and_the_calendar_named() -> None:
    uow = assignment_uow()
    cause = as_published(reported_event())

    await on_issue_reported(reported_event(), cause, uow, assignment_rules())

    [assigned] = uow.recorded
    assert assigned.causationid == cause.id and assigned.correlationid == cause.correlationid
    assert assigned.data["deadline"] == "2026-12-04"  # five working days after that Friday
    assert assigned.data["calendar"] == "weekdays"
    assert uow.store.rows["issue-1"].assignment_no == 1


async def test_a_repeated_report_is_not_assigned_twice() -> None:
    uow = assignment_uow()
    for _ in range(2):
        await on_issue_reported(
            reported_event(), as_published(reported_event()), uow, assignment_rules()
        )
    assert len(uow.recorded) == 1


async def test_an_unknown_category_is_rejected_for_the_dead_letters() -> None:
    with pytest.raises(Rejected, match="potholes"):
        await on_issue_reported(
            reported_event("potholes"),
            as_published(reported_event()),
            assignment_uow(),
            assignment_rules(),
        )


async def test_a_failed_look_back_is_assigned_again() -> None:
    uow = assignment_uow()
    rules = assignment_rules()
    await on_issue_reported(reported_event(), as_published(reported_event()), uow, rules)
    failed = IssueLookbackFailed(
        visitor="v",
        notes="still dark",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
        within_window=True,
    )

    await on_visit(failed, as_published(failed), uow, rules)

    assert [e.data["assignment_no"] for e in uow.recorded] == [1, 2]


def test_assignment_reacts_to_reports_plans_resolutions_and_look_backs_only() -> None:
    assert set(ASSIGNMENT) == {
        IssueReported,
        IssuePlanSet,  # a major affair's deadline follows its plan
        IssueLookbackFailed,
        IssueRevisitRecorded,  # a failed re-visit reopens the matter, as a look-back
        IssueResolved,
        IssueLookbackPassed,
    }


# -------------------------------------------------------------------------------- followup


def followup_rules() -> FollowupRules:
    reference.activate(reference.load(REFERENCE_DIR))
    return load_rules(REFERENCE_DIR, WeekdayCalendar(), TZ)


async def assigned_case(units: Units[InMemoryCases]) -> None:
    event = IssueAssigned(
        unit="town_construction",
        responsible_person_id="p1",
        responsible_person_name="Chen",
        deadline=date(2026, 12, 4),
        working_days=5,
        assignment_no=1,
        reason="routed",
        category="street_lights",
        village="shihu",
        calendar="weekdays",
    )
    uow = InMemoryUnitOfWork(units.store, service="followup", now=FRIDAY_MORNING)
    await on_issue_event(event, as_published(event), uow, followup_rules())


async def test_a_resolution_is_recorded_with_its_look_back_due_and_chained_to_the_case() -> None:
    units = Units(InMemoryCases(), service="followup", clock=clock)
    await assigned_case(units)
    before: Tracked | None = units.store.rows["issue-1"]
    assert before is not None

    recorded = await resolve_issue(
        units, followup_rules(), "issue-1", ResolveIssue(unit="town_construction", summary="ok")
    )

    [event] = units.committed
    assert event.type == "minqing." + IssueResolved.TYPE
    assert event.causationid == before.last_event_id
    assert event.data["lookback_due"] == "2026-12-08"  # seven working days later
    assert recorded.case.status == "resolved"


async def test_a_passed_look_back_closes_the_loop() -> None:
    units = Units(InMemoryCases(), service="followup", clock=clock)
    await assigned_case(units)
    rules = followup_rules()
    await resolve_issue(
        units, rules, "issue-1", ResolveIssue(unit="town_construction", summary="ok")
    )

    recorded = await record_lookback(
        units, rules, "issue-1", RecordLookback(outcome="passed", visitor="v", notes="")
    )

    assert recorded.case.status == "closed"
    assert units.committed[-1].type == "minqing." + IssueLookbackPassed.TYPE


async def test_a_wrong_unit_records_nothing() -> None:
    units = Units(InMemoryCases(), service="followup", clock=clock)
    await assigned_case(units)

    with pytest.raises(WrongState):
        await resolve_issue(
            units, followup_rules(), "issue-1", ResolveIssue(unit="water", summary="ok")
        )
    assert units.committed == []


def test_followup_reacts_to_reports_and_assignments() -> None:
    assert set(FOLLOWUP) == {
        IssueReported,
        IssueAssigned,
        IssueDeadlineRecomputed,
        IssueDeadlineExtended,
        IssueResponsibleChanged,
        IssueRevisitFlagged,
    }


# --------------------------------------------------------------------- provisional deadlines


class YearUnknown:
    """New Year's Day 2027 off, but (like chinesecalendar 1.11) 2027 may not be known yet:
    an unknown day is counted Monday to Friday, as the official calendar does."""

    def __init__(self, unknown_year: int | None, name: str) -> None:
        self.unknown_year = unknown_year
        self.name = name

    def knows(self, day: date) -> bool:
        return day.year != self.unknown_year

    def is_working_day(self, day: date) -> bool:
        if not self.knows(day):
            return day.weekday() < 5
        return day.weekday() < 5 and day != date(2027, 1, 1)


async def test_a_deadline_into_an_unknown_year_is_provisional_then_recomputed_once() -> None:
    monday = datetime(2026, 12, 28, 1, 0, tzinfo=UTC)
    units = Units(InMemoryAssignments(), service="assignment", clock=lambda: monday)
    unknown = assignment_rules(YearUnknown(2027, "before"))  # five working days
    cause = wrap(reported_event(), issue_id="issue-1", service="x", actor="x", time=monday)
    async with units() as uow:
        await on_issue_reported(reported_event(), cause, uow, unknown)
        await uow.commit()
    [assigned] = units.committed
    assert assigned.data["deadline"] == "2027-01-04"  # 1 January counted as a Friday
    assert assigned.data["deadline_provisional"] is True
    assert "2027" in assigned.data["deadline_note"]

    known = assignment_rules(YearUnknown(None, "published"))
    assert await recompute_deadlines(units, known) == 1
    assert await recompute_deadlines(units, known) == 0  # nothing twice

    recomputed = units.committed[-1]
    assert recomputed.type == "minqing.issue.deadline_recomputed"
    assert recomputed.data["previous_deadline"] == "2027-01-04"
    assert recomputed.data["deadline"] == "2027-01-05"  # 1 January is a holiday after all
    assert (recomputed.data["provisional"], recomputed.data["calendar"]) == (False, "published")
    assert units.store.rows["issue-1"].deadline_provisional is False


async def test_a_still_unknown_year_recomputes_nothing() -> None:
    monday = datetime(2026, 12, 28, 1, 0, tzinfo=UTC)
    units = Units(InMemoryAssignments(), service="assignment", clock=lambda: monday)
    unknown = assignment_rules(YearUnknown(2027, "before"))
    cause = wrap(reported_event(), issue_id="issue-1", service="x", actor="x", time=monday)
    async with units() as uow:
        await on_issue_reported(reported_event(), cause, uow, unknown)
        await uow.commit()

    assert await recompute_deadlines(units, unknown) == 0
    assert len(units.committed) == 1


# ----------------------------------------------------------------------- overdue, escalation


async def test_deadline_checks_record_each_step_once_chained_to_the_case() -> None:
    units = Units(InMemoryCases(), service="followup", clock=clock)
    await assigned_case(units)
    deadline = units.store.rows["issue-1"].case.deadline
    assert deadline is not None
    rules = followup_rules()

    assert await check_deadlines(units, rules, deadline) == 0
    assert await check_deadlines(units, rules, deadline + timedelta(days=1)) == 2
    assert await check_deadlines(units, rules, deadline + timedelta(days=1)) == 0
    assert await check_deadlines(units, rules, deadline + timedelta(days=30)) == 1
    assert await check_deadlines(units, rules, deadline + timedelta(days=60)) == 0

    types = [e.type for e in units.committed]
    assert types == ["minqing.issue.overdue", "minqing.issue.escalated", "minqing.issue.escalated"]
    assert units.committed[1].causationid == units.committed[0].id
    assert units.committed[2].data["to_role"] == "leader_in_charge"
    assert units.store.rows["issue-1"].last_event_id == units.committed[2].id


def test_escalation_goes_to_the_new_secretary_after_a_change() -> None:
    from minqing.services.followup.domain import Case, evolve

    case = Case(
        status="assigned",
        assignment_no=1,
        unit="sanqi_branch",
        deadline=date(2026, 12, 4),
        responsible_person_id="old",
        responsible_person_name="Old",
    )
    changed = IssueResponsibleChanged(
        unit="sanqi_branch",
        previous_person_id="old",
        previous_person_name="Old",
        person_id="new",
        person_name="New",
        assignment_no=1,
        reason="elected",
    )

    after = evolve(case, changed)

    assert after is not None
    assert (after.responsible_person_id, after.responsible_person_name) == ("new", "New")
