"""Followup's major affairs and money: plans, milestones, progress, funding, and the
look-back rules (another unit looks back; the resolver cannot pass; the second failure
escalates). Pure rules only."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from minqing.services.followup import lookback, plans
from minqing.services.followup.domain import (
    Case,
    Funding,
    PlanBeyondDeadline,
    RecordFunding,
    RecordLookback,
    ReportProgress,
    ResolveIssue,
    WrongState,
    decide_deadline_checks,
    decide_funding,
    decide_lookback,
    decide_lookback_escalation,
    decide_plan,
    decide_progress,
    decide_resolution,
    evolve,
    next_milestone_due,
)
from minqing.services.followup.escalation import Ladder, Person, Step
from minqing.shared.contract import reference
from minqing.shared.contract.events import (
    IssueAssigned,
    IssueEscalated,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueOverdue,
    IssuePlanSet,
    PlannedMilestone,
)
from minqing.shared.domain.calendar import WeekdayCalendar
from minqing.shared.service.settings import REFERENCE_DIR

FRIDAY = date(2026, 11, 27)
weekdays = WeekdayCalendar()
people = plans.Stakeholders(
    unit="town_construction",
    unit_name="Town Construction Office",
    secretary_id="xuma-secretary",
    secretary_name="Xu Haijun",
)
ladder = Ladder(
    steps=(
        Step(after_working_days=0, to="responsible_person"),
        Step(after_working_days=3, to="leader_in_charge"),
    ),
    leaders={"default": Person(id="deputy", name="Deputy Secretary")},
)


def bridge() -> plans.Template:
    return plans.load(REFERENCE_DIR).plans["bridge_rebuild"]


def planned_case(**changes: object) -> Case:
    """An assigned matter with the bridge plan counted from Friday 2026-11-27."""
    case = Case(status="assigned", assignment_no=1, unit="town_construction")
    event = decide_plan(
        case,
        plans.milestones(plans.stages_of(bridge()), FRIDAY, weekdays, people),
        template="bridge_rebuild",
        counted_from=FRIDAY,
        calendar="weekdays",
        set_by="supervisor",
    )
    planned = evolve(case, event)
    assert planned is not None
    return Case(**{**planned.__dict__, **changes})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ the plan


def test_milestones_fall_due_in_working_days_with_their_responsible_people() -> None:
    milestones = plans.milestones(plans.stages_of(bridge()), FRIDAY, weekdays, people)

    assert [m.number for m in milestones] == [1, 2, 3, 4]
    assert milestones[0].due == date(2026, 12, 11)  # ten working days after Friday
    assert milestones[1].due == date(2026, 12, 25)
    assert all(m.due.weekday() < 5 for m in milestones)
    assert (milestones[0].responsible_id, milestones[0].responsible_name) == (
        "town_construction",
        "Town Construction Office",
    )
    assert milestones[3].responsible_id == "xuma-secretary"  # "village_secretary"


def test_a_milestone_can_be_given_to_a_named_person() -> None:
    stage = plans.StageRequest("Survey", 3, "person", "li-wei", "Li Wei")
    [milestone] = plans.milestones([stage], FRIDAY, weekdays, people)
    assert (milestone.responsible_id, milestone.responsible_name) == ("li-wei", "Li Wei")
    assert milestone.due == date(2026, 12, 2)


class YearUnknown:
    name = "partial"

    def knows(self, day: date) -> bool:
        return day.year < 2027

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5


def test_a_milestone_into_an_unknown_year_is_provisional_with_the_reason() -> None:
    [near, far] = plans.milestones(
        [plans.StageRequest("a", 5, "unit"), plans.StageRequest("b", 40, "unit")],
        FRIDAY,
        YearUnknown(),
        people,
    )
    assert not near.provisional
    assert far.provisional and far.note


def test_a_plan_past_the_deadline_needs_the_reason_for_the_deadline_to_follow_it() -> None:
    milestones = plans.milestones(plans.stages_of(bridge()), FRIDAY, weekdays, people)
    case = Case(status="assigned", assignment_no=1, deadline=date(2026, 12, 18))

    def plan(case: Case, steps: tuple[PlannedMilestone, ...], why: str | None) -> IssuePlanSet:
        return decide_plan(
            case,
            steps,
            template="bridge_rebuild",
            counted_from=FRIDAY,
            calendar="weekdays",
            set_by="supervisor",
            extend_deadline_reason=why,
        )

    with pytest.raises(PlanBeyondDeadline) as refused:
        plan(case, milestones, None)
    assert "due 2027-03-05, after the matter's deadline 2026-12-18" in str(refused.value)
    reason = "the rebuild takes four months"
    assert plan(case, milestones, reason).extend_deadline_reason == reason
    # A plan that ends by the deadline asks nothing, whatever the request said.
    roomy = replace(case, deadline=date(2026, 12, 25))
    assert plan(roomy, milestones[:2], reason).extend_deadline_reason is None
    assert plan(roomy, milestones[:2], None).milestones == milestones[:2]


def test_a_plan_is_set_only_while_the_matter_is_assigned() -> None:
    milestones = plans.milestones(plans.stages_of(bridge()), FRIDAY, weekdays, people)
    for status in ("reported", "resolved", "closed", "reopened"):
        with pytest.raises(WrongState, match="while it is assigned"):
            decide_plan(
                Case(status=status, assignment_no=1),  # type: ignore[arg-type]
                milestones,
                template=None,
                counted_from=FRIDAY,
                calendar="weekdays",
                set_by="s",
            )


def test_a_plan_and_funds_outlive_a_reassignment() -> None:
    case = planned_case(
        funds=(Funding("f1", Decimal("1.00"), "self_raised", "received"),),
        lookback_failures=1,
        status="reopened",
    )
    again = evolve(
        case,
        IssueAssigned(
            unit="water_station",
            responsible_person_id="p",
            responsible_person_name="P",
            deadline=date(2027, 1, 8),
            working_days=10,
            assignment_no=2,
            reason="look-back failed",
            category="roads",
            village="xuma",
            calendar="weekdays",
        ),
    )
    assert again is not None
    assert again.milestones == case.milestones
    assert again.funds == case.funds
    assert again.lookback_failures == 1
    assert again.plan_template == "bridge_rebuild"


# -------------------------------------------------------------------------------- progress


def test_progress_is_reported_per_milestone_and_done_marks_it() -> None:
    case = planned_case()
    event = decide_progress(case, ReportProgress(2, "funds applied for", True, "wu"))
    assert (event.milestone, event.title, event.done) == (2, case.milestones[1].title, True)
    after = evolve(case, event)
    assert after is not None
    assert [m.done for m in after.milestones] == [False, True, False, False]
    assert next_milestone_due(after) == case.milestones[0].due

    note_only = evolve(after, decide_progress(after, ReportProgress(1, "surveying", False, "wu")))
    assert note_only == after


@pytest.mark.parametrize(
    ("case", "command", "reason"),
    [
        (Case(status="assigned", assignment_no=1), ReportProgress(1, "", True, "w"), "no plan"),
        (planned_case(), ReportProgress(5, "", True, "w"), "milestones 1 to 4, not 5"),
        (planned_case(status="resolved"), ReportProgress(1, "", True, "w"), "while assigned"),
    ],
)
def test_progress_is_refused_with_its_reason(
    case: Case, command: ReportProgress, reason: str
) -> None:
    with pytest.raises(WrongState, match=reason):
        decide_progress(case, command)


def test_a_done_milestone_cannot_be_undone() -> None:
    case = evolve(planned_case(), decide_progress(planned_case(), ReportProgress(1, "", True, "w")))
    assert case is not None
    with pytest.raises(WrongState, match="done already"):
        decide_progress(case, ReportProgress(1, "oops", False, "w"))


# --------------------------------------------------------------------------------- funding


def funding(status: str = "applied", amount: str = "450000.00") -> RecordFunding:
    return RecordFunding("f1", Decimal(amount), "project_funds", status, "wu")  # type: ignore[arg-type]


def test_a_funding_entry_then_its_new_status_replaces_it() -> None:
    case = Case(status="assigned", assignment_no=1)
    applied = evolve(case, decide_funding(case, funding()))
    assert applied is not None
    approved = evolve(applied, decide_funding(applied, funding("approved")))
    assert approved is not None
    assert approved.funds == (Funding("f1", Decimal("450000.00"), "project_funds", "approved"),)


def test_a_funding_entry_keeps_its_amount_and_source() -> None:
    case = evolve(Case(status="closed", assignment_no=1), decide_funding(Case("closed"), funding()))
    assert case is not None
    with pytest.raises(WrongState, match="only its status can change"):
        decide_funding(case, funding("received", amount="400000"))


# ------------------------------------------------------------------------- milestones overdue


def test_a_milestone_past_due_becomes_overdue_then_climbs_the_ladder_once() -> None:
    case = planned_case()
    first = case.milestones[0]
    assert decide_deadline_checks(case, first.due, weekdays, ladder) == []

    events = decide_deadline_checks(case, first.due + timedelta(days=1), weekdays, ladder)
    assert [type(e) for e in events] == [IssueOverdue, IssueEscalated]
    assert all(e.kind == "milestone" and e.milestone == 1 for e in events)
    assert events[1].to_person_id == "town_construction"  # the milestone's responsible
    for event in events:
        case = evolve(case, event) or case
    assert decide_deadline_checks(case, first.due + timedelta(days=1), weekdays, ladder) == []

    later = decide_deadline_checks(case, first.due + timedelta(days=6), weekdays, ladder)
    assert [(e.kind, e.level, e.to_role) for e in later if isinstance(e, IssueEscalated)] == [
        ("milestone", 2, "leader_in_charge")
    ]
    assert case.milestones[0].overdue and case.milestones[1].escalation_level == 0


def test_a_done_milestone_or_a_resolved_matter_is_not_overdue() -> None:
    case = planned_case()
    done = evolve(case, decide_progress(case, ReportProgress(1, "", True, "w")))
    assert done is not None
    day_after = case.milestones[0].due + timedelta(days=1)
    assert decide_deadline_checks(done, day_after, weekdays, ladder) == []
    resolved = planned_case(status="resolved")
    assert decide_deadline_checks(resolved, day_after, weekdays, ladder) == []


def test_milestone_checks_are_the_same_for_the_same_day() -> None:
    case = planned_case()
    day = case.milestones[2].due + timedelta(days=10)
    assert decide_deadline_checks(case, day, weekdays, ladder) == decide_deadline_checks(
        case, day, weekdays, ladder
    )
    overdue = [e for e in decide_deadline_checks(case, day, weekdays, ladder)]
    assert {e.milestone for e in overdue} == {1, 2, 3}


# ------------------------------------------------------------------- resolution, look-back


def test_a_resolution_carries_evidence_cost_funding_and_who_looks_back() -> None:
    command = ResolveIssue(
        unit="town_construction",
        summary="bridge rebuilt",
        evidence=("https://example.org/photo.jpg",),
        cost=Decimal("150000.00"),
        funding_source="project_funds",
    )
    resolved = decide_resolution(
        Case(status="assigned", assignment_no=1, unit="town_construction"),
        command,
        FRIDAY,
        weekdays,
        lookback_unit="grid_center",
    )
    assert resolved.evidence == ("https://example.org/photo.jpg",)
    assert (resolved.cost, resolved.funding_source) == (Decimal("150000.00"), "project_funds")
    after = evolve(Case(status="assigned", assignment_no=1, unit="town_construction"), resolved)
    assert after is not None
    assert (after.resolved_by, after.lookback_unit) == ("town_construction", "grid_center")


def resolved(by: str = "wu", failures: int = 0) -> Case:
    return Case(
        status="resolved",
        assignment_no=1,
        unit="town_construction",
        lookback_due=date(2026, 12, 8),
        resolved_by=by,
        lookback_unit="grid_center",
        lookback_failures=failures,
    )


def test_the_resolver_cannot_pass_the_look_back() -> None:
    with pytest.raises(WrongState, match="wu resolved the matter and cannot pass"):
        decide_lookback(resolved(), RecordLookback("passed", "wu", ""), FRIDAY)
    other = decide_lookback(resolved(), RecordLookback("passed", "grid-li", ""), FRIDAY)
    assert isinstance(other, IssueLookbackPassed)


def test_the_second_failed_look_back_escalates_once() -> None:
    first = decide_lookback(resolved(), RecordLookback("failed", "grid-li", "still broken"), FRIDAY)
    assert isinstance(first, IssueLookbackFailed) and first.failures == 1
    assert decide_lookback_escalation(first, resolved(), ladder) is None

    case = resolved(failures=1)
    second = decide_lookback(case, RecordLookback("failed", "grid-li", "cracked again"), FRIDAY)
    assert isinstance(second, IssueLookbackFailed) and second.failures == 2
    escalated = decide_lookback_escalation(second, case, ladder)
    assert escalated is not None
    assert (escalated.kind, escalated.to_role, escalated.to_person_id) == (
        "lookback_failed",
        "leader_in_charge",
        "deputy",
    )
    assert "cracked again" in escalated.reason
    after = evolve(case, second)
    assert after is not None and after.lookback_failures == 2 and after.status == "reopened"

    third = decide_lookback(resolved(failures=2), RecordLookback("failed", "g", "x"), FRIDAY)
    assert isinstance(third, IssueLookbackFailed)
    assert decide_lookback_escalation(third, resolved(failures=2), ladder) is None


# ------------------------------------------------------------------------ the rules' files


@pytest.fixture
def units() -> list[str]:
    return reference.load(REFERENCE_DIR).all_units()


def test_the_shipped_lookback_rules_send_no_unit_to_its_own_work(units: list[str]) -> None:
    reviewers = lookback.load(REFERENCE_DIR, units)
    assert all(reviewers.of(unit) != unit for unit in units)
    assert reviewers.of("town_construction") == "grid_center"
    assert reviewers.of("grid_center") == "civil_affairs"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('default = "grid_center"\n[units]\ngrid_center = "grid_center"\n', "its own work"),
        ('default = "grid_center"\n', "needs an entry"),
        ('default = "the_mayor"\n[units]\nthe_mayor = "grid_center"\n', "unknown units"),
        ("default = ", "lookback.toml"),
    ],
)
def test_bad_lookback_rules_are_refused_at_start_up(
    tmp_path: Path, units: list[str], text: str, fault: str
) -> None:
    (tmp_path / "lookback.toml").write_text(text, encoding="utf-8")
    with pytest.raises(lookback.InvalidReviewers, match=fault):
        lookback.load(tmp_path, units)


def test_a_bad_plans_file_is_refused_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "plans.toml").write_text(
        '[plans.x]\nname = "x"\n[[plans.x.milestones]]\ntitle = "a"\nworking_days = -1\n'
        'responsible = "unit"\n',
        encoding="utf-8",
    )
    with pytest.raises(plans.InvalidPlans, match="working_days"):
        plans.load(tmp_path)


def test_a_plan_event_round_trips() -> None:
    event = decide_plan(
        Case(status="assigned", assignment_no=1),
        plans.milestones(plans.stages_of(bridge()), FRIDAY, weekdays, people),
        template="bridge_rebuild",
        counted_from=FRIDAY,
        calendar="weekdays",
        set_by="s",
    )
    assert IssuePlanSet.model_validate_json(event.model_dump_json()) == event
