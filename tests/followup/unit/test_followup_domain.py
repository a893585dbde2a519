"""Followup: cancellation by the assigned unit and the look-back visit that verifies it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

import pytest

from minqing.services.followup.domain import (
    LOOKBACK_WORKING_DAYS,
    Case,
    RecordLookback,
    ResolveIssue,
    UnknownIssue,
    WrongState,
    decide_deadline_checks,
    decide_lookback,
    decide_lookback_recompute,
    decide_resolution,
    evolve,
)
from minqing.services.followup.escalation import Ladder, Person, Step
from minqing.shared.contract.events import (
    IssueAssigned,
    IssueEscalated,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueOverdue,
    IssueReported,
    IssueResolved,
    IssueStatus,
)
from minqing.shared.domain.calendar import WeekdayCalendar

FRIDAY = date(2026, 11, 27)
LOOKBACK_DUE = date(2026, 12, 8)  # seven working days after that Friday
DEADLINE = date(2026, 12, 4)
weekdays = WeekdayCalendar()


def case(
    status: IssueStatus = "assigned",
    *,
    assignment_no: int = 1,
    unit: str | None = "town_construction",
    lookback_due: date | None = None,
) -> Case:
    return Case(
        status=status,
        assignment_no=assignment_no,
        unit=unit,
        deadline=DEADLINE,
        lookback_due=lookback_due,
    )


def resolved_case(assignment_no: int = 1) -> Case:
    return case("resolved", assignment_no=assignment_no, lookback_due=LOOKBACK_DUE)


def resolve(unit: str = "town_construction", resolved_by: str | None = None) -> ResolveIssue:
    return ResolveIssue(unit=unit, summary="Replaced six lamps", resolved_by=resolved_by)


def visit(outcome: Literal["passed", "failed"] = "passed") -> RecordLookback:
    return RecordLookback(outcome=outcome, visitor="grid-worker-7", notes="Two lamps still dark")


def report() -> IssueReported:
    return IssueReported(
        title="Street lights out",
        description="Six lamps dark",
        category="street_lights",
        village="shihu",
        source="hotline_12345",
    )


def assignment(assignment_no: int = 1, unit: str = "town_construction") -> IssueAssigned:
    return IssueAssigned(
        unit=unit,
        responsible_person_id="shihu-secretary",
        responsible_person_name="Chen Lixin",
        deadline=DEADLINE,
        working_days=5,
        assignment_no=assignment_no,
        reason="routed on report",
        category="street_lights",
        village="shihu",
        calendar="weekdays",
    )


def resolution(assignment_no: int = 1) -> IssueResolved:
    return IssueResolved(
        unit="town_construction",
        summary="Replaced six lamps",
        resolved_by="wu",
        assignment_no=assignment_no,
        lookback_due=LOOKBACK_DUE,
    )


# Resolution (cancellation)


def test_the_assigned_unit_resolves_the_matter() -> None:
    resolved = decide_resolution(case(assignment_no=2), resolve(), FRIDAY, weekdays)

    assert resolved.unit == "town_construction"
    assert resolved.summary == "Replaced six lamps"
    assert resolved.assignment_no == 2


def test_the_look_back_is_due_seven_working_days_after_the_resolution() -> None:
    resolved = decide_resolution(case(), resolve(), FRIDAY, weekdays)

    assert LOOKBACK_WORKING_DAYS == 7
    assert resolved.lookback_due == LOOKBACK_DUE


def test_the_resolver_is_the_unit_unless_a_person_is_named() -> None:
    assert decide_resolution(case(), resolve(), FRIDAY, weekdays).resolved_by == "town_construction"
    named = decide_resolution(case(), resolve(resolved_by="wu"), FRIDAY, weekdays)
    assert named.resolved_by == "wu"


def test_resolving_an_unknown_matter_is_refused() -> None:
    with pytest.raises(UnknownIssue):
        decide_resolution(None, resolve(), FRIDAY, weekdays)


@pytest.mark.parametrize("status", ["reported", "reopened"])
def test_a_matter_not_yet_assigned_cannot_be_resolved(status: IssueStatus) -> None:
    with pytest.raises(WrongState, match=f"the matter is {status} and not assigned to a unit yet"):
        decide_resolution(case(status), resolve(), FRIDAY, weekdays)


def test_a_resolved_matter_cannot_be_resolved_again() -> None:
    with pytest.raises(WrongState, match="already resolved and awaits its look-back"):
        decide_resolution(resolved_case(), resolve(), FRIDAY, weekdays)


def test_a_closed_matter_cannot_be_resolved() -> None:
    with pytest.raises(WrongState, match="the matter is closed"):
        decide_resolution(case("closed"), resolve(), FRIDAY, weekdays)


def test_only_the_assigned_unit_can_resolve_the_matter() -> None:
    with pytest.raises(
        WrongState, match="the matter is assigned to town_construction, not to water_station"
    ):
        decide_resolution(case(), resolve(unit="water_station"), FRIDAY, weekdays)


# Look-back visit


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [("passed", IssueLookbackPassed), ("failed", IssueLookbackFailed)],
)
def test_the_outcome_of_the_visit_decides_the_event(
    outcome: Literal["passed", "failed"], kind: type
) -> None:
    recorded = decide_lookback(resolved_case(assignment_no=2), visit(outcome), FRIDAY)

    assert type(recorded) is kind
    assert recorded.visitor == "grid-worker-7"
    assert recorded.notes == "Two lamps still dark"
    assert recorded.assignment_no == 2
    assert recorded.lookback_due == LOOKBACK_DUE


@pytest.mark.parametrize(
    ("visited", "within"),
    [(date(2026, 12, 1), True), (LOOKBACK_DUE, True), (date(2026, 12, 9), False)],
    ids=["before the due date", "on the due date", "the day after"],
)
def test_a_visit_is_within_the_window_up_to_and_including_the_due_date(
    visited: date, within: bool
) -> None:
    assert decide_lookback(resolved_case(), visit(), visited).within_window is within


def test_a_look_back_of_an_unknown_matter_is_refused() -> None:
    with pytest.raises(UnknownIssue):
        decide_lookback(None, visit(), FRIDAY)


def test_a_closed_matter_takes_no_second_look_back() -> None:
    with pytest.raises(WrongState, match="the matter is closed; its look-back has passed"):
        decide_lookback(case("closed", lookback_due=LOOKBACK_DUE), visit(), FRIDAY)


@pytest.mark.parametrize("status", ["reported", "assigned", "reopened"])
def test_a_look_back_comes_only_after_resolution(status: IssueStatus) -> None:
    with pytest.raises(
        WrongState, match=f"the matter is {status}: a look-back comes after resolution"
    ):
        decide_lookback(case(status), visit(), FRIDAY)


# Following the matter's events


def test_the_first_report_opens_a_case_with_what_a_visitor_needs_on_the_site() -> None:
    opened = evolve(None, report())

    assert opened == Case(
        status="reported", source="hotline_12345", title="Street lights out", village="shihu"
    )


def test_the_case_keeps_the_source_and_its_ticket_id_through_assignments() -> None:
    reported = report().model_copy(update={"external_ref": "HL-7"})
    opened = evolve(None, reported)
    again = evolve(evolve(opened, assignment(1)), assignment(2, unit="water_station"))

    assert opened is not None and again is not None
    assert (opened.source, opened.external_ref) == ("hotline_12345", "HL-7")
    assert (again.source, again.external_ref, again.unit) == (
        "hotline_12345",
        "HL-7",
        "water_station",
    )


def test_a_repeated_report_leaves_the_case_as_it_is() -> None:
    assigned = evolve(case(), report())

    assert assigned is not None and assigned.title == "Street lights out"
    assert evolve(assigned, report()) is assigned


def test_an_assignment_records_the_unit_the_deadline_and_the_number() -> None:
    opened = evolve(None, report())

    assigned = evolve(opened, assignment())

    assert assigned == Case(
        status="assigned",
        assignment_no=1,
        unit="town_construction",
        deadline=DEADLINE,
        deadline_calendar="weekdays",
        responsible_person_id="shihu-secretary",
        responsible_person_name="Chen Lixin",
        source="hotline_12345",
        title="Street lights out",
        village="shihu",
    )


def test_an_assignment_seen_before_the_report_opens_the_case_and_the_report_keeps_it() -> None:
    assigned = evolve(None, assignment())

    after_report = evolve(assigned, report())

    assert after_report is not None
    assert after_report.status == "assigned"
    assert after_report.assignment_no == 1


@pytest.mark.parametrize("stale_no", [1, 2], ids=["earlier", "same"])
def test_a_stale_or_repeated_assignment_is_ignored(stale_no: int) -> None:
    on_second = case("resolved", assignment_no=2, lookback_due=LOOKBACK_DUE)

    after = evolve(on_second, assignment(stale_no, unit="water_station"))

    assert after is on_second


def test_a_resolution_sets_the_look_back_due_date() -> None:
    resolved = evolve(case(), resolution())

    assert resolved is not None
    assert resolved.status == "resolved"
    assert resolved.lookback_due == LOOKBACK_DUE


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (IssueLookbackPassed, "closed"),
        (IssueLookbackFailed, "reopened"),
    ],
)
def test_the_look_back_closes_or_reopens_the_case(
    event: type[IssueLookbackPassed | IssueLookbackFailed], status: IssueStatus
) -> None:
    recorded = event(
        visitor="grid-worker-7",
        notes="checked",
        assignment_no=1,
        lookback_due=LOOKBACK_DUE,
        within_window=True,
    )

    after = evolve(resolved_case(), recorded)

    assert after is not None
    assert after.status == status


def test_the_next_assignment_after_a_reopening_starts_afresh() -> None:
    reopened = case("reopened", lookback_due=LOOKBACK_DUE)

    reassigned = evolve(reopened, assignment(2, unit="sanqi_branch"))

    assert reassigned == Case(
        status="assigned",
        assignment_no=2,
        unit="sanqi_branch",
        deadline=DEADLINE,
        deadline_calendar="weekdays",
        responsible_person_id="shihu-secretary",
        responsible_person_name="Chen Lixin",
    )


def test_events_after_the_report_for_a_matter_never_seen_are_ignored() -> None:
    assert evolve(None, resolution()) is None


def test_a_failed_look_back_goes_round_again_until_the_second_assignment_is_resolved() -> None:
    state = evolve(evolve(None, report()), assignment(1))
    state = evolve(state, decide_resolution(state, resolve(), FRIDAY, weekdays))
    state = evolve(state, decide_lookback(state, visit("failed"), FRIDAY))
    assert state is not None
    with pytest.raises(WrongState):
        decide_resolution(state, resolve(), FRIDAY, weekdays)

    state = evolve(state, assignment(2))
    resolved_again = decide_resolution(state, resolve(), date(2026, 12, 14), weekdays)

    assert resolved_again.assignment_no == 2
    assert resolved_again.lookback_due == date(2026, 12, 23)


@pytest.mark.parametrize("status", ["reopened", "closed"])
def test_a_resolution_seen_again_after_the_look_back_does_not_undo_it(
    status: IssueStatus,
) -> None:
    past_lookback = case(status, lookback_due=LOOKBACK_DUE)

    after = evolve(past_lookback, resolution(1))

    assert after is not None
    assert after.status == status


# Provisional look-back due dates


class Year2027Unknown:
    name = "before 2027 was published"

    def knows(self, day: date) -> bool:
        return day.year != 2027

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5


class Published:
    name = "published"

    def knows(self, day: date) -> bool:
        return True

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day != date(2027, 1, 1)


def test_a_look_back_window_into_an_unknown_year_is_provisional_and_recomputed() -> None:
    christmas = date(2026, 12, 25)
    resolved = decide_resolution(case(), resolve(), christmas, Year2027Unknown())
    assert resolved.lookback_due_provisional and resolved.lookback_due == date(2027, 1, 5)
    assert resolved.resolved_on == christmas and resolved.calendar == Year2027Unknown.name
    state = evolve(case(), resolved)
    assert state is not None and state.lookback_provisional

    recomputed = decide_lookback_recompute(state, Published())

    assert recomputed is not None
    assert (recomputed.previous_lookback_due, recomputed.lookback_due) == (
        date(2027, 1, 5),
        date(2027, 1, 6),
    )
    after = evolve(state, recomputed)
    assert after is not None and not after.lookback_provisional
    assert after.lookback_due == date(2027, 1, 6)
    assert decide_lookback_recompute(after, Published()) is None


# Overdue and escalation

LADDER = Ladder(
    steps=(
        Step(after_working_days=0, to="responsible_person"),
        Step(after_working_days=3, to="leader_in_charge"),
    ),
    leaders={
        "default": Person(id="deputy-secretary", name="Deputy Secretary"),
        "town_construction": Person(id="deputy-mayor", name="Deputy Mayor"),
    },
)


def assigned_case() -> Case:
    state = evolve(evolve(None, report()), assignment())
    assert state is not None
    return state


def run_checks(state: Case, today: date) -> tuple[Case, list[str]]:
    """Apply the checks of ``today`` to the case, as the use case does."""
    events = decide_deadline_checks(state, today, weekdays, LADDER)
    for event in events:
        after = evolve(state, event)
        assert after is not None
        state = after
    return state, [f"{e.TYPE}:{getattr(e, 'level', '')}" for e in events]


def test_nothing_happens_up_to_and_including_the_deadline() -> None:
    assert decide_deadline_checks(assigned_case(), DEADLINE, weekdays, LADDER) == []


def test_the_day_after_the_deadline_it_is_overdue_and_goes_to_the_responsible_person() -> None:
    [overdue, escalated] = decide_deadline_checks(
        assigned_case(), DEADLINE + timedelta(days=1), weekdays, LADDER
    )

    assert isinstance(overdue, IssueOverdue)
    assert (overdue.kind, overdue.due, overdue.unit) == (
        "resolution",
        DEADLINE,
        "town_construction",
    )
    assert isinstance(escalated, IssueEscalated)
    assert (escalated.level, escalated.to_role, escalated.to_person_id) == (
        1,
        "responsible_person",
        "shihu-secretary",
    )


def test_three_working_days_later_it_goes_to_the_leader_in_charge_of_the_unit() -> None:
    state, first = run_checks(assigned_case(), DEADLINE + timedelta(days=1))
    # DEADLINE is a Friday: three working days after it is Wednesday; Thursday escalates.
    wednesday, thursday = DEADLINE + timedelta(days=5), DEADLINE + timedelta(days=6)

    assert run_checks(state, wednesday)[1] == []
    state, second = run_checks(state, thursday)

    assert first == ["issue.overdue:", "issue.escalated:1"]
    assert second == ["issue.escalated:2"]
    assert state.escalation_level == 2
    assert run_checks(state, thursday + timedelta(days=30))[1] == []  # nothing twice


def test_a_check_after_a_long_outage_records_every_step_that_fell_due_in_order() -> None:
    _, events = run_checks(assigned_case(), DEADLINE + timedelta(days=20))

    assert events == ["issue.overdue:", "issue.escalated:1", "issue.escalated:2"]


def test_a_resolved_matter_is_no_longer_overdue_but_its_look_back_can_be() -> None:
    state, _ = run_checks(assigned_case(), DEADLINE + timedelta(days=20))
    resolved = evolve(state, resolution())
    assert resolved is not None

    assert run_checks(resolved, LOOKBACK_DUE)[1] == []
    after, events = run_checks(resolved, LOOKBACK_DUE + timedelta(days=1))

    assert events == ["issue.overdue:", "issue.escalated:1"]
    assert (after.overdue_kind, after.overdue_due) == ("lookback", LOOKBACK_DUE)


def test_a_new_assignment_starts_a_new_clock() -> None:
    state, _ = run_checks(assigned_case(), DEADLINE + timedelta(days=20))
    reassigned = evolve(state, assignment(2))
    assert reassigned is not None and reassigned.escalation_level == 0

    assert decide_deadline_checks(reassigned, DEADLINE, weekdays, LADDER) == []
