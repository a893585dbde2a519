"""Assignment: who is responsible for a matter, and by when; acceptance, send-back, re-assignment,
extension and the registry of units. Pure decisions on the shipped reference data."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from minqing.services.assignment.domain import (
    MANUAL,
    Accept,
    Assignment,
    ChangeResponsible,
    ExtendDeadline,
    IssueNotAssigned,
    Reassign,
    RegistryRow,
    Reopening,
    SendBack,
    UnknownUnit,
    WrongState,
    decide_acceptance,
    decide_deadline_follows_plan,
    decide_extension,
    decide_initial,
    decide_manual,
    decide_reassignment,
    decide_registry_change,
    decide_registry_sync,
    decide_responsible_change,
    decide_send_back,
    evolve,
    evolve_registry,
    reopening,
)
from minqing.services.assignment.routing import Person, Routing, load
from minqing.shared.contract.events import (
    Event,
    IssueAssigned,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssuePlanSet,
    IssueReported,
    IssueResolved,
    IssueRevisitRecorded,
    PlannedMilestone,
    UnitResponsibleChanged,
)
from minqing.shared.contract.reference import load as load_reference
from minqing.shared.domain.calendar import WeekdayCalendar, official
from minqing.shared.service.settings import REFERENCE_DIR
from tests.support.calendars import KnownThrough

FRIDAY = date(2026, 11, 27)
MONDAY_AFTER_LOOKBACK = date(2026, 12, 14)
weekdays = WeekdayCalendar()
REFERENCE = load_reference(REFERENCE_DIR)
ROUTING: Routing = load(REFERENCE_DIR, REFERENCE)
FILES = REFERENCE.registry()


def registry() -> dict[str, RegistryRow]:
    """The registry as first seeded from the shipped files."""
    new, events = decide_registry_sync(FILES, {})
    assert events == []
    return {row.current.code: row for row in new}


def report(category: str = "street_lights", village: str = "sanqi") -> IssueReported:
    return IssueReported(
        title="Lights out", description="dark", category=category, village=village, source="visit"
    )


def assigned(category: str = "street_lights", village: str = "sanqi") -> IssueAssigned:
    event = decide_initial(None, report(category, village), ROUTING, registry(), FRIDAY, weekdays)
    assert event is not None
    return event


def state(*events: Event) -> Assignment:
    current: Assignment | None = None
    for event in events:
        current = evolve(current, event)
    assert current is not None
    return current


def failure(assignment_no: int = 1) -> IssueLookbackFailed:
    return IssueLookbackFailed(
        visitor="grid-worker-7",
        notes="The lamp is dark again",
        assignment_no=assignment_no,
        lookback_due=date(2026, 12, 15),
        within_window=True,
    )


# ------------------------------------------------------------------------ first assignment


def test_an_assignment_carries_the_day_its_deadline_was_counted_from_and_the_channel() -> None:
    event = assigned()

    current = state(event)

    assert (event.counted_from, event.source) == (FRIDAY, "visit")
    assert (current.assigned_on, current.source) == (FRIDAY, "visit")


def test_without_a_rule_the_category_routes_and_the_village_secretary_answers() -> None:
    event = assigned()

    assert (event.unit, event.working_days) == ("town_construction", 5)
    assert (event.responsible_person_id, event.responsible_unit) == (
        "sanqi-secretary",
        "sanqi_branch",
    )
    assert event.deadline == date(2026, 12, 4)  # five working days after that Friday
    assert event.rule_id == "category:street_lights"
    assert event.rule_explanation is not None and "no routing rule matched" in event.reason


def test_a_rule_records_its_id_explanation_plan_and_the_units_responsible_person() -> None:
    event = assigned("bridges")

    assert event.rule_id == "bridge_project"
    assert event.rule_explanation is not None and "staged project" in event.rule_explanation
    assert event.plan_template == "bridge_rebuild"
    assert event.scale == "major"  # the category's default scale
    assert (event.responsible_person_id, event.responsible_unit) == (
        "construction-head",
        "town_construction",
    )
    assert event.reason.startswith("routed on report by rule bridge_project")


def test_the_responsible_person_is_the_one_in_the_registry_now() -> None:
    rows = registry()
    rows["town_construction"] = replace(
        rows["town_construction"],
        current=rows["town_construction"].current.model_copy(
            update={"person_id": "new-head", "person_name": "New Head"}
        ),
    )

    event = decide_initial(None, report("bridges"), ROUTING, rows, FRIDAY, weekdays)

    assert event is not None and event.responsible_person_id == "new-head"


def test_a_matter_that_already_has_an_assignment_is_not_assigned_again() -> None:
    current = state(assigned())
    assert decide_initial(current, report(), ROUTING, registry(), FRIDAY, weekdays) is None


def test_an_assignment_becomes_the_current_state() -> None:
    current = state(assigned())

    assert current == Assignment(
        category="street_lights",
        village="sanqi",
        unit="town_construction",
        person_id="sanqi-secretary",
        person_name="王建国 Wang Jianguo",
        deadline=date(2026, 12, 4),
        assignment_no=1,
        assigned_on=FRIDAY,
        working_days=5,
        calendar="weekdays",
        status="assigned",
        scale="small",
        source="visit",
        responsible_unit="sanqi_branch",
        rule_id="category:street_lights",
    )


# ------------------------------------------------------------------------ failed look-back


def test_a_failed_look_back_returns_the_matter_to_its_unit_with_a_new_deadline() -> None:
    current = state(assigned())

    again = decide_reassignment(current, failure(1), ROUTING, MONDAY_AFTER_LOOKBACK, weekdays)

    assert again is not None
    assert (again.assignment_no, again.unit) == (2, "town_construction")
    assert again.responsible_person_id == current.person_id
    assert again.deadline == date(2026, 12, 21)
    assert "grid-worker-7" in again.reason and "dark again" in again.reason


def test_a_repeated_failure_for_an_earlier_assignment_is_ignored() -> None:
    current = replace(state(assigned()), assignment_no=2)
    assert decide_reassignment(current, failure(1), ROUTING, FRIDAY, weekdays) is None


def test_a_failed_look_back_for_a_matter_never_assigned_is_refused() -> None:
    with pytest.raises(IssueNotAssigned):
        decide_reassignment(None, failure(), ROUTING, MONDAY_AFTER_LOOKBACK, weekdays)


def revisit(outcome: str = "failed", failures: int | None = 1) -> IssueRevisitRecorded:
    return IssueRevisitRecorded(
        outcome=outcome,  # type: ignore[arg-type]
        visitor="grid-worker-7",
        notes="Two lamps are dark again",
        reason="score 1: still dark",
        due=date(2026, 12, 15),
        within_window=True,
        assignment_no=1,
        failures=failures,
    )


def test_a_failed_revisit_of_a_closed_matter_returns_it_to_its_unit_as_a_look_back_does() -> None:
    closed = state(
        assigned(),
        IssueResolved(
            unit="town_construction",
            summary="Lamps replaced",
            resolved_by="person:wu",
            assignment_no=1,
            lookback_due=date(2026, 12, 8),
        ),
        IssueLookbackPassed(
            visitor="grid-li",
            notes="lit",
            assignment_no=1,
            lookback_due=date(2026, 12, 8),
            within_window=True,
        ),
    )
    assert closed.status == "closed"

    again = decide_reassignment(closed, revisit(), ROUTING, MONDAY_AFTER_LOOKBACK, weekdays)

    assert again is not None
    assert (again.assignment_no, again.unit) == (2, "town_construction")
    assert again.responsible_person_id == closed.person_id
    assert again.deadline == date(2026, 12, 21)  # the rule's time limit, as after a look-back
    assert again.reason == "re-visit failed (grid-worker-7): Two lamps are dark again"
    assert again.rule_explanation == "returned to its unit after a failed re-visit"
    reopened = evolve(closed, again)
    assert reopened is not None and reopened.status == "assigned"


def test_a_passed_revisit_or_a_failed_one_from_before_reopening_changes_nothing() -> None:
    current = state(assigned())
    for visit in (revisit("passed", None), revisit("failed", None)):
        assert reopening(visit) is None
        assert decide_reassignment(current, visit, ROUTING, FRIDAY, weekdays) is None
    assert reopening(failure()) == Reopening(
        "look-back", "grid-worker-7", "The lamp is dark again", 1
    )


# ------------------------------------------------------------------------------ acceptance


def test_the_assigned_unit_accepts_a_matter_once_for_its_assignment() -> None:
    current = state(assigned())

    accepted = decide_acceptance(current, Accept("person:liu", on_behalf_of="Liu Wei"))
    after = evolve(current, accepted)

    assert (accepted.unit, accepted.accepted_by, accepted.assignment_no) == (
        "town_construction",
        "person:liu",
        current.assignment_no,
    )
    assert accepted.on_behalf_of == "Liu Wei"
    assert after == replace(current, accepted_by="person:liu")
    with pytest.raises(WrongState, match="already accepted"):
        decide_acceptance(after, Accept("person:liu"))


def test_a_re_assigned_matter_is_accepted_again_by_its_new_unit() -> None:
    first = state(assigned())
    accepted = decide_acceptance(first, Accept("person:liu"))
    sent = decide_send_back(evolve(first, accepted), SendBack("town_construction", "no", "Liu"))
    back = state(assigned(), accepted, sent)
    moved = decide_manual(
        back, Reassign("water_station", "theirs", "s"), ROUTING, registry(), FRIDAY, weekdays
    )
    after = state(assigned(), accepted, sent, moved)

    assert after.accepted_by is None
    assert decide_acceptance(after, Accept("person:sun")).unit == "water_station"
    stale = decide_acceptance(first, Accept("person:liu"))  # of the first assignment
    assert evolve(after, stale) == after


def test_a_sent_back_resolved_or_unknown_matter_cannot_be_accepted() -> None:
    current = state(assigned())
    sent = decide_send_back(current, SendBack("town_construction", "no", "Liu"))
    resolved = IssueResolved(
        unit="town_construction",
        summary="fixed",
        resolved_by="Liu",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
    )

    with pytest.raises(WrongState, match="sent back"):
        decide_acceptance(state(assigned(), sent), Accept("person:liu"))
    with pytest.raises(WrongState, match="resolved"):
        decide_acceptance(state(assigned(), resolved), Accept("person:liu"))
    with pytest.raises(IssueNotAssigned):
        decide_acceptance(None, Accept("person:liu"))


# ------------------------------------------------------------------------------- send back


def test_the_assigned_unit_sends_a_matter_back_and_stays_on_the_hook() -> None:
    current = state(assigned())

    sent = decide_send_back(current, SendBack("town_construction", "a private lamp", "Liu"))
    after = evolve(current, sent)

    assert (sent.unit, sent.reason, sent.deadline) == (
        "town_construction",
        "a private lamp",
        current.deadline,
    )
    assert after == replace(current, sent_back_reason="a private lamp")


def test_only_the_assigned_unit_can_send_a_matter_back() -> None:
    with pytest.raises(WrongState, match="only the assigned unit"):
        decide_send_back(state(assigned()), SendBack("water_station", "not ours", "Sun"))


def test_a_matter_is_sent_back_once_until_re_routed() -> None:
    current = state(assigned())
    sent = decide_send_back(current, SendBack("town_construction", "no", "Liu"))

    with pytest.raises(WrongState, match="already sent back"):
        decide_send_back(state(assigned(), sent), SendBack("town_construction", "no", "Liu"))


def test_a_resolved_matter_cannot_be_sent_back_re_assigned_or_extended() -> None:
    resolved = IssueResolved(
        unit="town_construction",
        summary="fixed",
        resolved_by="Liu",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
    )
    current = state(assigned(), resolved)

    assert current.status == "resolved"
    with pytest.raises(WrongState, match="resolved"):
        decide_send_back(current, SendBack("town_construction", "no", "Liu"))
    with pytest.raises(WrongState):
        decide_manual(
            current, Reassign("water_station", "r", "s"), ROUTING, registry(), FRIDAY, weekdays
        )
    with pytest.raises(WrongState):
        decide_extension(current, ExtendDeadline(3, "r", "s"), weekdays)
    lookback = IssueLookbackPassed(
        visitor="v", notes="", assignment_no=1, lookback_due=date(2026, 12, 8), within_window=True
    )
    assert state(assigned(), resolved, lookback).status == "closed"


def test_steps_for_a_matter_never_assigned_are_refused() -> None:
    with pytest.raises(IssueNotAssigned):
        decide_send_back(None, SendBack("town_construction", "no", "Liu"))


# ------------------------------------------------------------------------ manual re-assign


def test_a_re_assignment_by_hand_goes_to_the_units_responsible_person_with_a_new_deadline() -> None:
    current = state(
        assigned(), decide_send_back(state(assigned()), SendBack("town_construction", "x", "y"))
    )
    monday = date(2026, 11, 30)

    event = decide_manual(
        current,
        Reassign("sanqi_branch", "the lamp is the village's own", "town office"),
        ROUTING,
        registry(),
        monday,
        weekdays,
    )
    after = evolve(current, event)

    assert (event.assignment_no, event.unit, event.rule_id) == (2, "sanqi_branch", MANUAL)
    assert event.responsible_person_id == "sanqi-secretary"
    assert event.deadline == date(2026, 12, 7)  # the rules' five working days from Monday
    assert "the lamp is the village's own" in event.reason
    assert event.rule_explanation == event.reason
    assert after.sent_back_reason is None and after.unit == "sanqi_branch"


def test_a_re_assignment_may_name_the_person_and_the_time_limit() -> None:
    event = decide_manual(
        state(assigned()),
        Reassign("health_center", "r", "s", person=Person(id="dr-li", name="Li"), working_days=2),
        ROUTING,
        registry(),
        FRIDAY,
        weekdays,
    )

    assert (event.responsible_person_id, event.responsible_unit) == ("dr-li", None)
    assert (event.working_days, event.deadline) == (2, date(2026, 12, 1))


def test_a_re_assignment_to_an_unknown_unit_is_refused() -> None:
    with pytest.raises(UnknownUnit):
        decide_manual(
            state(assigned()), Reassign("nowhere", "r", "s"), ROUTING, registry(), FRIDAY, weekdays
        )


# ------------------------------------------------------------------------------- extension


def test_an_extension_adds_working_days_counted_from_the_assignment() -> None:
    current = state(assigned())

    event = decide_extension(
        current, ExtendDeadline(3, "waiting for parts", "supervisor"), weekdays
    )
    after = evolve(current, event)

    assert (event.previous_deadline, event.deadline) == (date(2026, 12, 4), date(2026, 12, 9))
    assert (event.calendar, event.extra_working_days) == ("weekdays", 3)
    assert (after.deadline, after.working_days) == (date(2026, 12, 9), 8)


def test_an_extension_of_an_earlier_assignment_changes_nothing() -> None:
    current = state(assigned())
    event = decide_extension(current, ExtendDeadline(3, "r", "s"), weekdays)

    assert evolve(replace(current, assignment_no=2), event) == replace(current, assignment_no=2)


# ------------------------------------------------------------- a major affair's plan


def plan_set(
    *dues: date, reason: str | None = "it follows the plan", assignment_no: int = 1
) -> IssuePlanSet:
    return IssuePlanSet(
        plan_template=None,
        milestones=tuple(
            PlannedMilestone(
                number=n,
                title=f"step {n}",
                due=due,
                working_days=n,
                responsible="unit",
                responsible_id="town_construction",
                responsible_name="Town Construction Office",
            )
            for n, due in enumerate(dues, start=1)
        ),
        counted_from=FRIDAY,
        calendar="weekdays",
        set_by="town-office",
        assignment_no=assignment_no,
        extend_deadline_reason=reason,
    )


def test_the_sanqi_bridges_deadline_follows_its_staged_plan() -> None:
    """Routed on Monday 7 December 2026 by bridge_project: 20 working days, to 4 January
    2027; its bridge_rebuild plan (70 working days) ends on 15 March 2027. The official
    calendar as it stood before 2027 was published, whichever chinesecalendar is installed."""
    calendar = KnownThrough(official(REFERENCE_DIR), 2026)
    monday = date(2026, 12, 7)
    routed = decide_initial(None, report("bridges"), ROUTING, registry(), monday, calendar)
    assert routed is not None and routed.plan_template == "bridge_rebuild"
    current = state(routed)
    assert current.deadline == date(2027, 1, 4)

    plan = plan_set(date(2026, 12, 21), date(2027, 1, 4), date(2027, 3, 1), date(2027, 3, 15))
    event = decide_deadline_follows_plan(current, plan, calendar)

    assert event is not None
    assert (event.previous_deadline, event.deadline) == (date(2027, 1, 4), date(2027, 3, 15))
    assert event.extra_working_days == 50  # 70 working days from the assignment in all
    assert (event.reason, event.extended_by) == ("it follows the plan", "town-office")
    assert event.provisional and event.note  # 2027's official calendar is not known yet
    after = evolve(current, event)
    assert (after.deadline, after.working_days) == (date(2027, 3, 15), 70)
    assert decide_deadline_follows_plan(after, plan, calendar) is None  # redelivered


def test_a_plan_ending_on_a_day_off_extends_to_the_next_working_day() -> None:
    current = state(assigned())  # 2026-12-04
    saturday = date(2026, 12, 12)
    event = decide_deadline_follows_plan(current, plan_set(saturday), weekdays)
    assert event is not None
    assert (event.deadline, event.extra_working_days) == (date(2026, 12, 14), 6)


def test_only_a_plan_of_the_open_assignment_that_asks_moves_the_deadline() -> None:
    current = state(assigned())  # deadline 2026-12-04
    later = date(2026, 12, 18)
    assert decide_deadline_follows_plan(current, plan_set(date(2026, 12, 4)), weekdays) is None
    assert decide_deadline_follows_plan(current, plan_set(later, reason=None), weekdays) is None
    reassigned = replace(current, assignment_no=2)  # the plan was of assignment 1
    assert decide_deadline_follows_plan(reassigned, plan_set(later), weekdays) is None
    resolved = replace(current, status="resolved")
    assert decide_deadline_follows_plan(resolved, plan_set(later), weekdays) is None
    assert decide_deadline_follows_plan(None, plan_set(later), weekdays) is None


# -------------------------------------------------------------------------------- registry


def new_secretary(reason: str = "elected") -> UnitResponsibleChanged:
    change = decide_registry_change(
        registry()["sanqi_branch"],
        "sanqi_branch",
        ChangeResponsible("sanqi-secretary-2", "Zhao Min", None, reason, "town office"),
    )
    assert change is not None
    return change


def test_the_first_synchronisation_registers_every_unit_without_events() -> None:
    new, events = decide_registry_sync(FILES, {})

    assert [row.current.code for row in new] == REFERENCE.all_units()
    assert events == []
    assert decide_registry_sync(FILES, registry()) == ([], [])  # nothing twice


def test_a_new_person_in_the_files_is_a_change_with_the_previous_person() -> None:
    files = dict(FILES)
    files["sanqi_branch"] = files["sanqi_branch"].model_copy(
        update={"person_id": "sanqi-secretary-2", "person_name": "Zhao Min"}
    )

    new, [event] = decide_registry_sync(files, registry())

    assert (event.unit, event.previous_person_id, event.person_id) == (
        "sanqi_branch",
        "sanqi-secretary",
        "sanqi-secretary-2",
    )
    assert (new, event.changed_by) == ([], "service:assignment")  # on reading the files


def test_a_change_by_hand_survives_synchronisation_with_unchanged_files() -> None:
    rows = registry()
    change = new_secretary()
    rows["sanqi_branch"] = evolve_registry(rows["sanqi_branch"], change, FILES)

    assert rows["sanqi_branch"].current.person_id == "sanqi-secretary-2"
    assert decide_registry_sync(FILES, rows) == ([], [])


def test_a_change_by_hand_to_the_same_person_changes_nothing() -> None:
    row = registry()["sanqi_branch"]
    same = ChangeResponsible("sanqi-secretary", row.current.person_name, None, "r", "s")

    assert decide_registry_change(row, "sanqi_branch", same) is None
    with pytest.raises(UnknownUnit):
        decide_registry_change(None, "nowhere", same)


def test_an_open_matter_of_the_unit_passes_to_the_new_responsible_person() -> None:
    current = state(assigned())  # the Sanqi secretary answers for it

    event = decide_responsible_change(current, new_secretary("elected"))

    assert event is not None
    assert (event.previous_person_id, event.person_id) == ("sanqi-secretary", "sanqi-secretary-2")
    assert "elected" in event.reason
    assert evolve(current, event).person_id == "sanqi-secretary-2"  # type: ignore[union-attr]


def test_matters_of_other_units_or_no_longer_open_keep_their_person() -> None:
    other_village = state(assigned(village="xuma"))
    closed = replace(state(assigned()), status="resolved")
    named = replace(state(assigned()), responsible_unit=None)

    for current in (other_village, closed, named):
        assert decide_responsible_change(current, new_secretary()) is None


def test_a_report_that_says_small_is_routed_by_the_small_matter_rule() -> None:
    small_road = IssueReported(
        title="收割机进不了田",
        description="路口需垫一下",
        category="roads",
        village="xuma",
        source="visit",
        scale="small",
    )

    event = decide_initial(None, small_road, ROUTING, registry(), FRIDAY, weekdays)

    assert event is not None
    assert (event.rule_id, event.unit, event.scale) == (
        "road_small_village",
        "xuma_branch",
        "small",
    )
    assert assigned("roads", "xuma").rule_id == "road_project"  # no scale: the category's major
