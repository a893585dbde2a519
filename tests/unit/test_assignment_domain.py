"""Assignment: who is responsible for a matter, and by when."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.assignment.domain import (
    Assignment,
    IssueNotAssigned,
    Routing,
    decide_initial,
    decide_reassignment,
    evolve,
)
from shared.calendar import WeekdayCalendar
from shared.events import IssueLookbackFailed, IssueReported
from shared.reference import Route

FRIDAY = date(2026, 11, 27)
MONDAY_AFTER_LOOKBACK = date(2026, 12, 14)
weekdays = WeekdayCalendar()


def route(unit: str = "town_construction", working_days: int = 5) -> Route:
    return Route(
        unit=unit,
        person_id="sanqi-secretary",
        person_name="Wang Jianguo",
        working_days=working_days,
    )


def routing_to(chosen: Route, asked: list[tuple[str, str]] | None = None) -> Routing:
    """A routing that always answers ``chosen`` and notes what it was asked."""

    def routing(category: str, village: str) -> Route:
        if asked is not None:
            asked.append((category, village))
        return chosen

    return routing


def report(category: str = "bridges", village: str = "sanqi") -> IssueReported:
    return IssueReported(
        title="Dangerous bridge over the East and West River",
        description="The railings are gone",
        category=category,
        village=village,
        source="visit",
    )


def current(assignment_no: int = 1) -> Assignment:
    return Assignment(
        category="bridges",
        village="sanqi",
        unit="town_construction",
        person_id="sanqi-secretary",
        person_name="Wang Jianguo",
        deadline=date(2026, 12, 4),
        assignment_no=assignment_no,
        assigned_on=FRIDAY,
        working_days=5,
        calendar="weekdays",
    )


def failure(assignment_no: int = 1) -> IssueLookbackFailed:
    return IssueLookbackFailed(
        visitor="grid-worker-7",
        notes="The new railing is already loose",
        assignment_no=assignment_no,
        lookback_due=date(2026, 12, 15),
        within_window=True,
    )


def test_a_new_matter_goes_to_the_routed_unit_and_responsible_person() -> None:
    assigned = decide_initial(None, report(), routing_to(route()), FRIDAY, weekdays)

    assert assigned is not None
    assert assigned.unit == "town_construction"
    assert assigned.responsible_person_id == "sanqi-secretary"
    assert assigned.responsible_person_name == "Wang Jianguo"
    assert assigned.assignment_no == 1
    assert assigned.category == "bridges"
    assert assigned.village == "sanqi"


def test_the_routing_is_asked_about_the_reported_category_and_village() -> None:
    asked: list[tuple[str, str]] = []

    decide_initial(None, report("roads", "xuma"), routing_to(route(), asked), FRIDAY, weekdays)

    assert asked == [("roads", "xuma")]


def test_a_deadline_skips_the_weekend() -> None:
    assigned = decide_initial(None, report(), routing_to(route(working_days=5)), FRIDAY, weekdays)

    assert assigned is not None
    assert assigned.deadline == date(2026, 12, 4)
    assert assigned.working_days == 5


def test_a_one_day_limit_reported_on_a_friday_is_due_on_the_monday() -> None:
    assigned = decide_initial(None, report(), routing_to(route(working_days=1)), FRIDAY, weekdays)

    assert assigned is not None
    assert assigned.deadline == date(2026, 11, 30)


def test_the_first_assignment_explains_how_it_was_routed() -> None:
    assigned = decide_initial(None, report(), routing_to(route()), FRIDAY, weekdays)

    assert assigned is not None
    assert "bridges" in assigned.reason
    assert "town_construction" in assigned.reason


def test_a_matter_that_already_has_an_assignment_is_not_assigned_again() -> None:
    assert decide_initial(current(), report(), routing_to(route()), FRIDAY, weekdays) is None


def test_a_failed_look_back_reassigns_with_the_next_number_and_a_new_deadline() -> None:
    assigned = decide_reassignment(
        current(1), failure(1), routing_to(route()), MONDAY_AFTER_LOOKBACK, weekdays
    )

    assert assigned is not None
    assert assigned.assignment_no == 2
    assert assigned.deadline == date(2026, 12, 21)
    assert assigned.unit == "town_construction"


def test_the_reassignment_reason_names_the_visitor_and_their_notes() -> None:
    assigned = decide_reassignment(
        current(), failure(), routing_to(route()), MONDAY_AFTER_LOOKBACK, weekdays
    )

    assert assigned is not None
    assert "grid-worker-7" in assigned.reason
    assert "The new railing is already loose" in assigned.reason


def test_a_reassignment_routes_the_original_category_and_village_again() -> None:
    asked: list[tuple[str, str]] = []
    moved = route(unit="sanqi_branch", working_days=10)

    assigned = decide_reassignment(
        current(), failure(), routing_to(moved, asked), MONDAY_AFTER_LOOKBACK, weekdays
    )

    assert asked == [("bridges", "sanqi")]
    assert assigned is not None
    assert assigned.unit == "sanqi_branch"
    assert assigned.category == "bridges"
    assert assigned.village == "sanqi"


def test_a_repeated_failure_for_an_earlier_assignment_is_ignored() -> None:
    assigned = decide_reassignment(
        current(2), failure(1), routing_to(route()), MONDAY_AFTER_LOOKBACK, weekdays
    )

    assert assigned is None


def test_a_failed_look_back_for_a_matter_never_assigned_is_refused() -> None:
    with pytest.raises(IssueNotAssigned):
        decide_reassignment(None, failure(), routing_to(route()), MONDAY_AFTER_LOOKBACK, weekdays)


def test_an_assignment_becomes_the_current_state() -> None:
    assigned = decide_initial(None, report(), routing_to(route()), FRIDAY, weekdays)
    assert assigned is not None

    assert evolve(None, assigned, FRIDAY) == Assignment(
        category="bridges",
        village="sanqi",
        unit="town_construction",
        person_id="sanqi-secretary",
        person_name="Wang Jianguo",
        deadline=date(2026, 12, 4),
        assignment_no=1,
        assigned_on=FRIDAY,
        working_days=5,
        calendar="weekdays",
    )


def test_each_assignment_replaces_the_previous_one() -> None:
    first = decide_initial(None, report(), routing_to(route()), FRIDAY, weekdays)
    assert first is not None
    second = decide_reassignment(
        evolve(None, first, FRIDAY),
        failure(1),
        routing_to(route()),
        MONDAY_AFTER_LOOKBACK,
        weekdays,
    )
    assert second is not None

    state = evolve(None, second, MONDAY_AFTER_LOOKBACK)

    assert state == replace(
        evolve(None, first, FRIDAY),
        assignment_no=2,
        deadline=date(2026, 12, 21),
        assigned_on=MONDAY_AFTER_LOOKBACK,
    )
    assert (
        decide_reassignment(state, failure(1), routing_to(route()), MONDAY_AFTER_LOOKBACK, weekdays)
        is None
    )
