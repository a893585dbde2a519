"""Assignment's use cases on the in-memory unit of work: routing on report, send-back,
re-assignment, extension, and the registry of units with its events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from minqing.services.assignment import routing
from minqing.services.assignment.domain import (
    ChangeResponsible,
    ExtendDeadline,
    Reassign,
    SendBack,
    WrongState,
)
from minqing.services.assignment.handlers import (
    Rules,
    change_responsible,
    extend_deadline,
    on_issue_reported,
    on_status_event,
    reassign,
    send_back,
    sync_registry,
)
from minqing.shared.contract import reference
from minqing.shared.contract.envelope import wrap
from minqing.shared.contract.events import IssueReported, IssueResolved
from minqing.shared.domain.calendar import WeekdayCalendar
from minqing.shared.service.settings import REFERENCE_DIR
from tests.support.fakes import InMemoryAssignments, Units

FRIDAY_MORNING = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 in Shihu
REF = reference.load(REFERENCE_DIR)
RULES = Rules(
    routing=routing.load(REFERENCE_DIR, REF),
    calendar=WeekdayCalendar(),
    timezone="Asia/Shanghai",
    files=REF.registry(),
)


def units() -> Units[InMemoryAssignments]:
    return Units(InMemoryAssignments(), service="assignment", clock=lambda: FRIDAY_MORNING)


async def report(
    u: Units[InMemoryAssignments], issue_id: str, category: str = "street_lights"
) -> None:
    event = IssueReported(
        title="t", description="d", category=category, village="sanqi", source="visit"
    )
    cause = wrap(event, issue_id=issue_id, service="intake", actor="x", time=FRIDAY_MORNING)
    async with u() as uow:
        await on_issue_reported(event, cause, uow, RULES)
        await uow.commit()


async def test_a_report_is_routed_by_the_rules_before_the_registry_is_synchronised() -> None:
    u = units()

    await report(u, "issue-1", "bridges")

    [assigned] = u.committed
    assert assigned.data["rule_id"] == "bridge_project"
    assert assigned.data["responsible_person_id"] == "construction-head"  # from the files


async def test_send_back_then_re_route_records_both_in_the_matters_history() -> None:
    u = units()
    await report(u, "issue-1")

    sent = await send_back(
        u, RULES, "issue-1", SendBack("town_construction", "the lamp is private", "Liu")
    )
    moved = await reassign(
        u, RULES, "issue-1", Reassign("sanqi_branch", "the village's own lamp", "town office")
    )

    types = [e.type.removeprefix("minqing.") for e in u.committed]
    assert types == ["issue.assigned", "issue.sent_back", "issue.assigned"]
    assert sent.assignment.unit == "town_construction"  # still on the hook
    assert sent.assignment.deadline == date(2026, 12, 4)
    assert (moved.assignment.unit, moved.assignment.assignment_no) == ("sanqi_branch", 2)
    assert u.committed[1].subject == u.committed[2].subject == "issue-1"
    assert u.committed[1].actor == "Liu"
    # steps over HTTP stay in the matter's chain
    assert {e.correlationid for e in u.committed} == {u.committed[0].correlationid}


async def test_a_refused_step_records_nothing() -> None:
    u = units()
    await report(u, "issue-1")
    before = list(u.committed)

    with pytest.raises(WrongState):
        await send_back(u, RULES, "issue-1", SendBack("water_station", "not ours", "Sun"))
    assert u.committed == before


async def test_an_extension_is_an_event_with_the_calendar_and_the_new_date() -> None:
    u = units()
    await report(u, "issue-1")

    await extend_deadline(u, RULES, "issue-1", ExtendDeadline(2, "parts on order", "supervisor"))

    extended = u.committed[-1]
    assert extended.type == "minqing.issue.deadline_extended"
    assert extended.data["deadline"] == "2026-12-08"
    assert extended.data["calendar"] == "weekdays"
    assert extended.data["reason"] == "parts on order"
    assert u.store.rows["issue-1"].deadline == date(2026, 12, 8)


async def test_the_first_synchronisation_registers_the_units_then_nothing_changes() -> None:
    u = units()

    assert await sync_registry(u, RULES) == len(REF.all_units())
    assert await sync_registry(u, RULES) == 0

    assert set(u.store.units) == set(REF.all_units())
    assert u.committed == []  # a unit enters the registry without an event


async def test_a_new_secretary_takes_over_the_open_matters_of_the_branch() -> None:
    u = units()
    await sync_registry(u, RULES)
    await report(u, "open-1")
    await report(u, "open-2")
    await report(u, "done-1")
    resolved = IssueResolved(
        unit="town_construction",
        summary="fixed",
        resolved_by="Liu",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
    )
    async with u() as uow:
        await on_status_event(
            resolved,
            wrap(resolved, issue_id="done-1", service="followup", actor="x", time=FRIDAY_MORNING),
            uow,
            RULES,
        )

    row, moved = await change_responsible(
        u,
        RULES,
        "sanqi_branch",
        ChangeResponsible("sanqi-secretary-2", "赵敏 Zhao Min", None, "new secretary", "town"),
    )

    assert (row.current.person_id, moved) == ("sanqi-secretary-2", 2)
    unit_event, *issue_events = u.made[-1].committed
    assert (unit_event.type, unit_event.subject) == (
        "minqing.unit.responsible_changed",
        "sanqi_branch",
    )
    assert sorted(e.subject for e in issue_events) == ["open-1", "open-2"]
    assert all(e.type == "minqing.issue.responsible_changed" for e in issue_events)
    assert all(e.causationid == unit_event.id for e in issue_events)
    chains = {e.subject: e.correlationid for e in u.committed if e.type.endswith(".assigned")}
    assert all(e.correlationid == chains[e.subject] for e in issue_events)
    assert unit_event.correlationid not in chains.values()
    assert u.store.rows["done-1"].person_id == "sanqi-secretary"
    # the change by hand stands when the unchanged files are read again
    assert await sync_registry(u, RULES) == 0
    # a new matter now goes to the new secretary
    await report(u, "open-3")
    assert u.committed[-1].data["responsible_person_id"] == "sanqi-secretary-2"


async def test_changed_files_are_recorded_at_the_next_synchronisation() -> None:
    u = units()
    await sync_registry(u, RULES)
    await report(u, "open-1", "bridges")
    files = dict(RULES.files)
    files["town_construction"] = files["town_construction"].model_copy(
        update={"person_id": "construction-head-2", "person_name": "New Head"}
    )

    assert await sync_registry(u, replace(RULES, files=files)) == 1

    unit_event, issue_event = u.made[-1].committed
    assert unit_event.data["previous_person_id"] == "construction-head"
    assert issue_event.subject == "open-1"
    assert issue_event.data["person_id"] == "construction-head-2"
