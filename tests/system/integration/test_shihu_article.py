"""The article's own matters, replayed on the four services in one process over a real
NATS and a real PostgreSQL, under a clock the test moves across National Day 2026.

Shiguan Road's street lights, the dangerous bridge over the East and West River in Sanqi
(a major affair with its staged plan and 450,000 yuan of project funds), a broken road
(whose first look-back fails), the sheep smell in Qizhuang (a dispute left overdue, which
climbs the escalation ladder), the harvester road in Xuma (padded on the spot by the
village), the family in Sixing who cannot harvest their rice (8 volunteers) and the
micro-wishes of 312 left-behind children (260,000 yuan of social donations). Each ends with
the right unit, deadlines on the official calendar, escalations and status."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.followup.app import create_app as followup_app
from minqing.services.intake.app import create_app as intake_app
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.contract.envelope import Envelope
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, isolated_settings, serve, stream_messages
from tests.support.identity import AS


class MovableClock:
    """The town's clock, at 10:00 local time (UTC+8) of the day the test says."""

    def __init__(self, day: date) -> None:
        self.to(day)

    def to(self, day: date) -> None:
        self.now = datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Town:
    clock: MovableClock
    intake: httpx.AsyncClient
    assignment: httpx.AsyncClient
    followup: httpx.AsyncClient
    projection: httpx.AsyncClient
    settings: Settings

    async def report(self, **body: Any) -> str:
        response = await self.intake.post("/api/v1/reports", json=body)
        assert response.status_code == 201, response.text
        issue_id: str = response.json()["issue_id"]
        await self.case(issue_id, lambda c: c["status"] == "assigned")
        return issue_id

    async def case(self, issue_id: str, ok: Any = lambda c: True) -> dict[str, Any]:
        """Followup's view of the matter, once ``ok`` holds for it."""

        async def get() -> dict[str, Any] | None:
            response = await self.followup.get(f"/api/v1/issues/{issue_id}/case")
            return response.json() if response.status_code == 200 else None

        found: dict[str, Any] = await eventually(get, lambda c: c is not None and ok(c))
        return found

    async def assigned(self, issue_id: str) -> dict[str, Any]:
        response = await self.assignment.get(f"/api/v1/issues/{issue_id}/assignment")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def history(self, issue_id: str, ok: Any = lambda h: True) -> list[dict[str, Any]]:
        """The matter's own steps, once ``ok`` holds for them (replies to reporters, sent
        as they come, left out)."""

        async def steps() -> list[dict[str, Any]]:
            response = await self.projection.get(f"/api/v1/issues/{issue_id}/history")
            if response.status_code == 404:
                return []
            return [
                e
                for e in response.json()["events"]
                if e["type"] != "minqing.issue.reporter_replied"
            ]

        found: list[dict[str, Any]] = await eventually(steps, ok)
        return found

    async def post(self, client: httpx.AsyncClient, path: str, **body: Any) -> dict[str, Any]:
        # look-backs by line staff; the rest by the desk (every other role)
        headers = AS["line"] if path.endswith("/lookback") else None
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        found: dict[str, Any] = response.json()
        return found

    async def resolve(self, issue_id: str, unit: str, summary: str, **more: Any) -> None:
        await self.post(
            self.followup,
            f"/api/v1/issues/{issue_id}/resolution",
            unit=unit,
            summary=summary,
            resolved_by=f"{unit}-staff",
            **more,
        )

    async def look_back(self, issue_id: str, outcome: str, notes: str) -> dict[str, Any]:
        return await self.post(
            self.followup,
            f"/api/v1/issues/{issue_id}/lookback",
            outcome=outcome,
            visitor="grid-worker-7",
            notes=notes,
        )

    async def progress(self, issue_id: str, *milestones: int) -> None:
        for number in milestones:
            await self.post(
                self.followup,
                f"/api/v1/issues/{issue_id}/progress",
                milestone=number,
                done=True,
                note="done",
                reported_by="site-engineer",
            )

    async def closed(self, issue_id: str) -> None:
        """Closed in followup, in assignment and in the read model alike."""
        await self.case(issue_id, lambda c: c["status"] == "closed")

        async def elsewhere() -> tuple[str, str]:
            matter = (await self.projection.get(f"/api/v1/issues/{issue_id}")).json()
            return matter["status"], (await self.assigned(issue_id))["status"]

        await eventually(elsewhere, lambda got: got == ("closed", "closed"))


# An actor: kind:name, the kind a principal's (shared/identity/principal.py) or a
# resident's (who acts with the token of a reply or an invitation).
PRINCIPAL = re.compile(r"(person|system|service|resident):[A-Za-z0-9._-]+")
# The event types the article's matters go through (every other type is checked on the
# streams of the tests that make it: tests/support/actors.py).
ARTICLE_TYPES = {
    "issue.reported",
    "issue.assigned",
    "issue.plan_set",
    "issue.deadline_extended",
    "issue.progress_reported",
    "issue.funding_recorded",
    "issue.supervisor_invited",
    "issue.supervision_recorded",
    "issue.resolved",
    "issue.lookback_failed",
    "issue.lookback_passed",
    "issue.overdue",
    "issue.escalated",
}


def types(history: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("minqing.") for e in history]


@pytest.fixture
async def town(nats_url: str, database_url: str) -> AsyncIterator[Town]:
    settings = isolated_settings(nats_url, database_url, deadline_check_seconds=0.1)
    clock = MovableClock(date(2026, 9, 28))  # a Monday, three days before National Day
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serve(intake_app(settings, clock=clock)))
        assignment = await stack.enter_async_context(serve(assignment_app(settings, clock=clock)))
        followup = await stack.enter_async_context(serve(followup_app(settings, clock=clock)))
        projection = await stack.enter_async_context(serve(projection_app(settings, clock=clock)))
        yield Town(clock, intake, assignment, followup, projection, settings)


def report(title: str, category: str, village: str, source: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": title,
        "category": category,
        "village": village,
        "source": source,
        "reporter": {"name": "Zhang San", "phone": "138 0000 1234"},
    }


async def test_the_article_matters_go_round_the_loop(town: Town) -> None:
    # ---- Monday 28 September: the list is compiled and every matter routed.
    lights = await town.report(
        **report("Street lights on Shiguan Road are not lit", "street_lights", "shihu", "visit")
    )
    bridge = await town.report(
        **report("Dangerous bridge over the East and West River", "bridges", "sanqi", "visit")
    )
    road = await town.report(
        **report("Broken road in Huangying", "roads", "huangying", "hotline_12345")
    )
    sheep = await town.report(
        **report(
            "Smell of the neighbours' sheep in Qizhuang",
            "neighbour_dispute",
            "qizhuang",
            "letters_visits",
        )
    )
    harvester = await town.report(
        **report("Harvester cannot enter the field: road repair", "roads", "xuma", "visit")
    )
    rice = await town.report(
        **report(
            "Family cannot harvest their rice: children away",
            "farming_help",
            "sixing",
            "grid_center",
        )
    )
    wishes = await town.report(
        **report("Micro-wishes of 312 left-behind children", "other", "shihu", "village_branch")
    )

    # Deadlines count working days on the official calendar: 1-7 October are off, and
    # Saturday 10 October is a working day (调休). Each is the routing rule's at first:
    expected = {
        lights: ("town_construction", "category:street_lights", "2026-10-10"),
        bridge: ("town_construction", "bridge_project", "2026-10-30"),
        road: ("town_construction", "road_project", "2026-10-23"),
        sheep: ("mediation_center", "petition_dispute", "2026-10-16"),
        # Reports carry no scale yet: a road is routed as a major road project...
        harvester: ("town_construction", "road_project", "2026-10-23"),
        rice: ("rural_revitalization", "category:farming_help", "2026-10-08"),
        wishes: ("shihu_branch", "category:other", "2026-10-16"),
    }
    for issue_id, (unit, rule, deadline) in expected.items():
        got = await town.assigned(issue_id)
        assert (got["unit"], got["rule_id"]) == (unit, rule)
        steps = await town.history(issue_id, lambda h: "issue.assigned" in types(h))
        [routed] = [e["data"] for e in steps if e["type"] == "minqing.issue.assigned"]
        assert (routed["deadline"], routed["deadline_provisional"]) == (deadline, False)
        assert routed["calendar"].startswith("cn-official")
    assert (await town.assigned(bridge))["responsible_person_id"] == "construction-head"
    bridge_case = await town.case(bridge, lambda c: len(c["milestones"]) == 4)
    assert bridge_case["plan_template"] == "bridge_rebuild"
    assert [m["due"] for m in bridge_case["milestones"]][:2] == ["2026-10-16", "2026-10-30"]
    assert (await town.case(road, lambda c: c["milestones"]))["plan_template"] == "road_repair"

    # ...so the town office gives it to Xuma's two committees, who pad it the same day.
    moved = await town.post(
        town.assignment,
        f"/api/v1/issues/{harvester}/reassign",
        unit="xuma_branch",
        reason="the village's two committees pad the road on the spot",
        by="town-office",
        working_days=1,
    )
    assert moved["assignment"]["deadline"] == "2026-09-29"
    await town.case(harvester, lambda c: c["unit"] == "xuma_branch")
    await town.resolve(harvester, "xuma_branch", "Road padded; the harvester entered the field")

    # The Sixing general party branch takes the family's harvest on.
    await town.post(
        town.assignment,
        f"/api/v1/issues/{rice}/reassign",
        unit="sixing_branch",
        reason="the Sixing general party branch organises volunteers",
        by="town-office",
    )
    await town.case(rice, lambda c: c["unit"] == "sixing_branch")

    # A major affair is done in steps, each with a date: its deadline follows its plan. The
    # bridge is due when its acceptance is, 70 working days on (January 2027, provisional
    # until that year's official calendar is known), the road when its works are.
    for issue_id, plan in ((bridge, "bridge_rebuild"), (road, "road_repair")):
        case = await town.case(
            issue_id,
            lambda c: c["deadline"] == c["milestones"][-1]["due"] if c["milestones"] else False,
        )
        last = case["milestones"][-1]
        followed = await town.assigned(issue_id)
        assert (followed["deadline"], followed["deadline_provisional"]) == (
            last["due"],
            last["provisional"],
        )
        steps = await town.history(issue_id, lambda h: "issue.deadline_extended" in types(h))
        [extended] = [e["data"] for e in steps if e["type"] == "minqing.issue.deadline_extended"]
        assert extended["reason"] == f"a major affair's deadline follows its staged plan ({plan})"
        assert extended["previous_deadline"] == expected[issue_id][2]
    assert (await town.assigned(bridge))["deadline"].startswith("2027-01")
    assert (await town.assigned(road))["deadline"] == "2026-11-13"

    # Project funds for the bridge: applied for, then approved.
    await town.post(
        town.followup,
        f"/api/v1/issues/{bridge}/funding",
        amount="450000",
        source="project_funds",
        status="applied",
        recorded_by="town-finance",
    )
    [entry] = (await town.case(bridge))["funds"]
    await town.post(
        town.followup,
        f"/api/v1/issues/{bridge}/funding",
        funding_id=entry["funding_id"],
        amount="450000",
        source="project_funds",
        status="approved",
        recorded_by="town-finance",
    )
    # Residents of Sanqi are invited to supervise the rebuilding, the whole way through.
    supervisor = (
        await town.post(
            town.intake,
            f"/api/v1/issues/{bridge}/supervisors",
            name="Li Si",
            phone="13600001111",
            invited_by="cadre-liu",
        )
    )["supervisor_ref"]
    await town.post(
        town.intake,
        f"/api/v1/issues/{bridge}/supervision",
        supervisor_ref=supervisor,
        kind="check",
        satisfied=True,
        notes="Survey staked out",
    )
    await town.post(
        town.followup,
        f"/api/v1/issues/{wishes}/funding",
        amount="260000.00",
        source="social_donations",
        status="received",
        note="312 micro-wishes",
        recorded_by="organ-branch",
    )

    # ---- Tuesday 29 and Wednesday 30 September.
    town.clock.to(date(2026, 9, 29))
    await town.look_back(harvester, "passed", "Harvester working in the field")
    await town.resolve(
        rice, "sixing_branch", "8 volunteers harvested the rice; grain dried on the square"
    )
    town.clock.to(date(2026, 9, 30))
    await town.look_back(rice, "passed", "Rice harvested and stored")

    # ---- Friday 9 October, after the holiday.
    town.clock.to(date(2026, 10, 9))
    await town.resolve(lights, "town_construction", "Six lamps replaced")
    await town.progress(road, 1, 2, 3)
    await town.resolve(road, "town_construction", "Road resurfaced")
    await town.progress(bridge, 1, 2)
    await town.resolve(wishes, "shihu_branch", "312 micro-wishes fulfilled")

    # ---- Saturday 10 October, a working day: look-backs.
    town.clock.to(date(2026, 10, 10))
    await town.look_back(lights, "passed", "All lamps lit at night")
    await town.look_back(wishes, "passed", "Children received their wishes")
    failed = await town.look_back(road, "failed", "Potholes again after the rain")
    assert failed["status"] == "reopened"
    reopened = await town.case(road, lambda c: c["assignment_no"] == 2)
    assert reopened["status"] == "assigned"
    again = await town.assigned(road)
    # Back to its unit, with a new deadline: 15 working days from Saturday 10 October.
    assert (again["unit"], again["deadline"]) == ("town_construction", "2026-10-30")

    # ---- Friday 16 October: the bridge is rebuilt; the dispute is still open.
    town.clock.to(date(2026, 10, 16))
    await town.progress(bridge, 3, 4)
    await town.resolve(
        bridge,
        "town_construction",
        "Bridge demolished and rebuilt",
        cost="450000",
        funding_source="project_funds",
    )

    async def sign_off() -> int:  # once intake has learnt of the resolution
        response = await town.intake.post(
            f"/api/v1/issues/{bridge}/supervision",
            json={"supervisor_ref": supervisor, "kind": "sign_off", "satisfied": True},
        )
        return response.status_code

    assert await eventually(sign_off, lambda status: status == 201) == 201

    # ---- Saturday 17 October: the dispute missed its deadline, and is escalated.
    town.clock.to(date(2026, 10, 17))
    steps = await town.history(sheep, lambda h: "issue.escalated" in types(h))
    assert types(steps) == ["issue.reported", "issue.assigned", "issue.overdue", "issue.escalated"]
    overdue, first = steps[2]["data"], steps[3]["data"]
    assert (overdue["kind"], overdue["due"]) == ("resolution", "2026-10-16")
    responsible = (await town.assigned(sheep))["responsible_person_id"]
    assert (first["level"], first["to_role"], first["to_person_id"]) == (
        1,
        "responsible_person",
        responsible,
    )

    # ---- Monday 19 October: the bridge's look-back passes.
    town.clock.to(date(2026, 10, 19))
    await town.look_back(bridge, "passed", "Deck and railings checked")

    # ---- Friday 23 October: three working days after the due date, the leader in charge.
    town.clock.to(date(2026, 10, 23))
    steps = await town.history(sheep, lambda h: types(h).count("issue.escalated") == 2)
    second = steps[-1]["data"]
    assert (second["level"], second["to_role"], second["to_person_id"], second["due"]) == (
        2,
        "leader_in_charge",
        "town-politics-law-secretary",
        "2026-10-16",
    )
    assert "3 working days after the due date" in second["reason"]
    await town.resolve(sheep, "mediation_center", "Sheep pen moved away from the houses")
    await town.resolve(road, "town_construction", "Road rebuilt with a proper base")

    # ---- Monday 26 October: the last look-backs.
    town.clock.to(date(2026, 10, 26))
    await town.look_back(sheep, "passed", "Neighbours satisfied")
    await town.look_back(road, "passed", "Road holds after rain")

    for issue_id in (lights, bridge, road, sheep, harvester, rice, wishes):
        await town.closed(issue_id)
    # Only the dispute left overdue was escalated; nothing else went overdue.
    for issue_id in (lights, bridge, road, harvester, rice, wishes):
        got = types(await town.history(issue_id))
        assert "issue.overdue" not in got and "issue.escalated" not in got, (issue_id, got)
    road_steps = types(await town.history(road, lambda h: types(h)[-1] == "issue.lookback_passed"))
    assert [t for t in road_steps if t != "issue.progress_reported"] == [
        "issue.reported",
        "issue.assigned",
        "issue.plan_set",
        "issue.deadline_extended",
        "issue.resolved",
        "issue.lookback_failed",
        "issue.assigned",
        "issue.resolved",
        "issue.lookback_passed",
    ]

    bridge_steps = types(await town.history(bridge))
    assert bridge_steps.count("issue.supervision_recorded") == 2
    assert bridge_steps.count("issue.funding_recorded") == 2

    # Who did what: every event of the article names an authenticated principal as its
    # actor (a person or system by their credentials, a service acting on its own), never
    # a name a caller typed; the names typed are on_behalf_of, beside it.
    recorded = [Envelope.model_validate_json(m.data) for m in await stream_messages(town.settings)]
    assert {(e.type, e.actor) for e in recorded if not PRINCIPAL.fullmatch(e.actor)} == set()
    seen = {e.type.removeprefix("minqing.") for e in recorded}
    assert seen >= ARTICLE_TYPES, sorted(ARTICLE_TYPES - seen)
    typed = {e.data.get("on_behalf_of") for e in recorded} - {None}
    assert typed >= {"site-engineer"}, typed

    totals = (await town.followup.get("/api/v1/funds")).json()["by_source"]
    assert {k: float(v) for k, v in totals.items()} == {
        "project_funds": 450000.0,
        "social_donations": 260000.0,
    }
