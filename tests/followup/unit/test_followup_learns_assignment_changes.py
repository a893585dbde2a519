"""Followup and assignment's changes: an extended deadline moves the overdue date; a
send-back leaves the first unit on the hook (overdue still escalates); a re-assignment
starts the new unit's deadline."""

from __future__ import annotations

from datetime import date

from minqing.services.followup.domain import Case, decide_deadline_checks, evolve
from minqing.services.followup.escalation import Ladder, Person, Step
from minqing.shared.contract.events import (
    Event,
    IssueAssigned,
    IssueDeadlineExtended,
    IssueOverdue,
    IssueReported,
    IssueSentBack,
)
from minqing.shared.domain.calendar import WeekdayCalendar

DEADLINE = date(2026, 12, 4)  # a Friday
weekdays = WeekdayCalendar()
LADDER = Ladder(
    steps=(Step(after_working_days=0, to="responsible_person"),),
    leaders={"default": Person(id="deputy-secretary", name="Deputy Secretary")},
)


def assigned(
    number: int = 1, unit: str = "town_construction", deadline: date = DEADLINE
) -> IssueAssigned:
    return IssueAssigned(
        unit=unit,
        responsible_person_id="sanqi-secretary",
        responsible_person_name="Wang Jianguo",
        deadline=deadline,
        working_days=5,
        assignment_no=number,
        reason="routed",
        category="street_lights",
        village="sanqi",
        calendar="weekdays",
    )


def case(*events: Event) -> Case:
    state: Case | None = None
    for event in (
        IssueReported(
            title="t", description="d", category="street_lights", village="sanqi", source="visit"
        ),
        *events,
    ):
        state = evolve(state, event)
    assert state is not None
    return state


def extension(number: int = 1) -> IssueDeadlineExtended:
    return IssueDeadlineExtended(
        previous_deadline=DEADLINE,
        deadline=date(2026, 12, 9),
        extra_working_days=3,
        calendar="weekdays",
        reason="parts",
        extended_by="supervisor",
        assignment_no=number,
    )


def overdue_on(state: Case, today: date) -> list[IssueOverdue]:
    events = decide_deadline_checks(state, today, weekdays, LADDER)
    return [e for e in events if isinstance(e, IssueOverdue)]


def test_an_extended_deadline_is_overdue_only_after_the_new_date() -> None:
    state = case(assigned(), extension())

    assert state.deadline == date(2026, 12, 9)
    assert overdue_on(state, date(2026, 12, 7)) == []
    [overdue] = overdue_on(state, date(2026, 12, 10))
    assert overdue.due == date(2026, 12, 9)


def test_an_extension_of_an_earlier_assignment_is_ignored() -> None:
    state = case(assigned(1), assigned(2, deadline=date(2026, 12, 18)), extension(1))

    assert state.deadline == date(2026, 12, 18)


def test_a_sent_back_matter_stays_with_its_first_unit_and_still_becomes_overdue() -> None:
    sent = IssueSentBack(
        unit="town_construction",
        reason="not ours",
        sent_back_by="Liu",
        assignment_no=1,
        deadline=DEADLINE,
    )
    state = case(assigned(), sent)

    assert (state.unit, state.deadline) == ("town_construction", DEADLINE)
    [overdue] = overdue_on(state, date(2026, 12, 7))
    assert overdue.unit == "town_construction"


def test_a_re_assignment_gives_the_new_unit_its_own_deadline() -> None:
    state = case(assigned(), assigned(2, unit="sanqi_branch", deadline=date(2026, 12, 11)))

    assert (state.unit, state.deadline, state.assignment_no) == (
        "sanqi_branch",
        date(2026, 12, 11),
        2,
    )
    assert overdue_on(state, date(2026, 12, 7)) == []
