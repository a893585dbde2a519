"""Followup's plans, progress, money and look-back as use cases on in-memory fakes: what
each records, chained to the matter, and what it refuses without recording."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from minqing.services.followup.app import load_rules
from minqing.services.followup.domain import (
    PlanBeyondDeadline,
    RecordFunding,
    RecordLookback,
    ReportProgress,
    ResolveIssue,
)
from minqing.services.followup.handlers import (
    Rules,
    SetPlan,
    UnknownTemplate,
    check_deadlines,
    fund_totals,
    on_issue_event,
    recompute_lookbacks,
    record_funding,
    record_lookback,
    report_progress,
    resolve_issue,
    set_plan,
)
from minqing.services.followup.plans import StageRequest
from minqing.shared.contract import reference
from minqing.shared.contract.envelope import wrap
from minqing.shared.contract.events import IssueAssigned
from minqing.shared.domain.calendar import WeekdayCalendar
from minqing.shared.service.settings import REFERENCE_DIR
from tests.support.fakes import InMemoryCases, InMemoryUnitOfWork, Units

FRIDAY_MORNING = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 in Shihu
ISSUE = "issue-1"


@pytest.fixture
def rules() -> Rules:
    reference.activate(reference.load(REFERENCE_DIR))
    return load_rules(REFERENCE_DIR, WeekdayCalendar(), "Asia/Shanghai")


@pytest.fixture
def units() -> Units[InMemoryCases]:
    return Units(InMemoryCases(), service="followup", clock=lambda: FRIDAY_MORNING)


def assignment(number: int = 1, plan: str | None = "bridge_rebuild") -> IssueAssigned:
    return IssueAssigned(
        unit="town_construction",
        responsible_person_id="xuma-secretary",
        responsible_person_name="Xu Haijun",
        deadline=date(2026, 12, 18),
        working_days=15,
        assignment_no=number,
        reason="routed",
        category="roads",
        village="xuma",
        calendar="weekdays",
        plan_template=plan,
    )


async def deliver(units: Units[InMemoryCases], rules: Rules, event: IssueAssigned) -> list[str]:
    """Deliver an assignment as the consumer would; the types it records."""
    uow = InMemoryUnitOfWork(units.store, service="followup", now=FRIDAY_MORNING)
    cause = wrap(event, issue_id=ISSUE, service="assignment", actor="a", time=FRIDAY_MORNING)
    await on_issue_event(event, cause, uow, rules)
    return [e.type for e in uow.recorded]


async def test_an_assignment_with_a_template_records_the_plan_once(
    units: Units[InMemoryCases], rules: Rules
) -> None:
    assert await deliver(units, rules, assignment()) == ["minqing.issue.plan_set"]
    assert await deliver(units, rules, assignment()) == []  # redelivered: nothing new
    assert await deliver(units, rules, assignment(2)) == []  # re-assigned: keeps its plan

    case = units.store.rows[ISSUE].case
    assert [m.due for m in case.milestones][:2] == [date(2026, 12, 11), date(2026, 12, 25)]
    assert case.milestones[3].responsible_id == "xuma-secretary"
    assert case.assignment_no == 2


async def test_a_plan_from_the_assignments_template_asks_the_deadline_to_follow_it(
    units: Units[InMemoryCases], rules: Rules
) -> None:
    uow = InMemoryUnitOfWork(units.store, service="followup", now=FRIDAY_MORNING)
    event = assignment()  # deadline 2026-12-18; bridge_rebuild ends on 2027-03-05
    cause = wrap(event, issue_id=ISSUE, service="assignment", actor="a", time=FRIDAY_MORNING)
    await on_issue_event(event, cause, uow, rules)
    [plan_set] = uow.recorded
    assert plan_set.data["milestones"][-1]["due"] == "2027-03-05"
    assert plan_set.data["extend_deadline_reason"] == (
        "a major affair's deadline follows its staged plan (bridge_rebuild)"
    )


async def test_an_unknown_template_sets_no_plan_but_tracks_the_assignment(
    units: Units[InMemoryCases], rules: Rules
) -> None:
    assert await deliver(units, rules, assignment(plan="moon_base")) == []
    assert units.store.rows[ISSUE].case.status == "assigned"
    assert units.store.rows[ISSUE].case.milestones == ()


async def test_a_supervisor_sets_a_plan_and_progress_is_reported_on_it(
    units: Units[InMemoryCases], rules: Rules
) -> None:
    await deliver(units, rules, assignment(plan=None))
    stages = (StageRequest("Survey", 5, "unit"), StageRequest("Works", 20, "village_secretary"))
    with pytest.raises(PlanBeyondDeadline, match=r"due 2026-12-25, after .* deadline 2026-12-18"):
        await set_plan(units, rules, ISSUE, SetPlan(set_by="town-office", stages=stages))
    assert units.committed == []
    why = "the works need four weeks"
    command = SetPlan(set_by="town-office", stages=stages, extend_deadline_reason=why)
    await set_plan(units, rules, ISSUE, command)
    plan_set = units.committed[-1]
    assert plan_set.actor == "town-office"
    assert plan_set.data["extend_deadline_reason"] == why
    assert plan_set.data["milestones"][0]["due"] == "2026-12-04"
    assert plan_set.data["counted_from"] == "2026-11-27"

    recorded = await report_progress(
        units, rules, ISSUE, ReportProgress(1, "survey done", True, "wu")
    )
    assert units.committed[-1].causationid == plan_set.id
    assert recorded.case.milestones[0].done

    with pytest.raises(UnknownTemplate, match="bridge_rebuild"):
        await set_plan(units, rules, ISSUE, SetPlan(set_by="s", template="moon_base"))
    assert len(units.committed) == 2


async def test_funding_totals_by_source_and_status(
    units: Units[InMemoryCases], rules: Rules
) -> None:
    await deliver(units, rules, assignment(plan=None))

    def money(funding_id: str, amount: str, status: str) -> RecordFunding:
        return RecordFunding(funding_id, Decimal(amount), "project_funds", status, "wu")  # type: ignore[arg-type]

    await record_funding(units, rules, ISSUE, money("a", "150000", "applied"))
    await record_funding(units, rules, ISSUE, money("b", "300000", "received"))
    await record_funding(units, rules, ISSUE, money("a", "150000", "received"))

    [total] = await fund_totals(units)
    assert (total.source, total.status, total.amount, total.entries) == (
        "project_funds",
        "received",
        Decimal("450000"),
        2,
    )


async def test_milestone_checks_record_each_step_once(
    units: Units[InMemoryCases], rules: Rules
) -> None:
    await deliver(units, rules, assignment())
    first_due = units.store.rows[ISSUE].case.milestones[0].due

    assert await check_deadlines(units, rules, first_due) == 0
    assert await check_deadlines(units, rules, first_due + timedelta(days=1)) == 2
    assert await check_deadlines(units, rules, first_due + timedelta(days=1)) == 0
    kinds = [(e.type, e.data.get("kind"), e.data.get("milestone")) for e in units.committed]
    assert kinds[-2:] == [
        ("minqing.issue.overdue", "milestone", 1),
        ("minqing.issue.escalated", "milestone", 1),
    ]


async def test_the_look_back_goes_to_another_unit_and_a_second_failure_escalates(
    units: Units[InMemoryCases], rules: Rules
) -> None:
    await deliver(units, rules, assignment(plan=None))
    resolution = ResolveIssue(unit="town_construction", summary="ok", resolved_by="wu")
    await resolve_issue(units, rules, ISSUE, resolution)
    assert units.committed[-1].data["lookback_unit"] == "grid_center"

    await record_lookback(units, rules, ISSUE, RecordLookback("failed", "grid-li", "broken"))
    assert units.committed[-1].type == "minqing.issue.lookback_failed"
    await deliver(units, rules, assignment(2, plan=None))  # assignment sends it back
    await resolve_issue(units, rules, ISSUE, resolution)

    before = len(units.committed)
    recorded = await record_lookback(
        units, rules, ISSUE, RecordLookback("failed", "grid-li", "broken again")
    )
    failed, escalated = units.committed[before:]
    assert failed.data["failures"] == 2
    assert escalated.type == "minqing.issue.escalated"
    assert escalated.data["kind"] == "lookback_failed"
    assert escalated.causationid == failed.id
    assert recorded.event_id == failed.id


class Year2027:
    """Weekdays; 2027 unknown until ``published``, then 2027-01-01 is a holiday."""

    def __init__(self, published: bool) -> None:
        self.published = published
        self.name = "official" if published else "partial"

    def knows(self, day: date) -> bool:
        return day.year < 2027 or self.published

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and not (self.published and day == date(2027, 1, 1))


async def test_provisional_milestones_are_counted_again_once_the_year_is_known(
    units: Units[InMemoryCases], rules: Rules
) -> None:
    before = replace(rules, calendar=Year2027(published=False))
    await deliver(units, before, assignment())
    case = units.store.rows[ISSUE].case
    assert [m.provisional for m in case.milestones] == [False, False, True, True]
    assert case.milestones[2].due == date(2027, 2, 19)  # a Friday, counted Monday to Friday
    assert await recompute_lookbacks(units, before) == 0  # nothing known yet: no event

    after = replace(rules, calendar=Year2027(published=True))
    assert await recompute_lookbacks(units, after) == 2
    assert await recompute_lookbacks(units, after) == 0
    moved = [e.data for e in units.committed]
    assert [(d["milestone"], d["provisional"]) for d in moved] == [(3, False), (4, False)]
    case = units.store.rows[ISSUE].case
    assert not any(m.provisional for m in case.milestones)
    assert case.milestones[2].due == date(2027, 2, 22)  # New Year's Day off: the next Monday
