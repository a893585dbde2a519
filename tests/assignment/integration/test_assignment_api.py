"""Assignment over HTTP on real NATS and PostgreSQL: routing by the rules, acceptance, send-back,
re-assignment, extension (which followup learns), and the registry of units."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from minqing.services.assignment.app import create_app
from minqing.services.followup.app import create_app as create_followup
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.support.events import FRIDAY_MORNING, publish, reported
from tests.support.harness import eventually, serve, stream_messages


@pytest.fixture
async def assignment(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings, clock=lambda: FRIDAY_MORNING)) as client:
        yield client


async def assignment_of(client: httpx.AsyncClient, issue_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/api/v1/issues/{issue_id}/assignment")
    return response.json() if response.status_code == 200 else None


async def a_matter(
    client: httpx.AsyncClient, settings: Settings, *, category: str = "street_lights"
) -> dict[str, Any]:
    issue_id = new_id()
    await publish(settings, reported(issue_id, category=category, village="sanqi"))
    found = await eventually(lambda: assignment_of(client, issue_id), lambda a: a is not None)
    assert found is not None
    return found


async def events_of(settings: Settings, subject: str) -> list[dict[str, Any]]:
    messages = [json.loads(m.data) for m in await stream_messages(settings)]
    return [m for m in messages if m["subject"] == subject]


async def test_a_report_is_routed_by_the_rules_and_the_rule_is_on_the_event(
    assignment: httpx.AsyncClient, settings: Settings
) -> None:
    matter = await a_matter(assignment, settings, category="bridges")

    assert (matter["unit"], matter["rule_id"]) == ("town_construction", "bridge_project")
    assert matter["responsible_person_id"] == "construction-head"
    history = await eventually(
        lambda: events_of(settings, matter["issue_id"]), lambda e: len(e) == 2
    )
    data = history[1]["data"]
    assert data["plan_template"] == "bridge_rebuild"
    assert "staged project" in data["rule_explanation"]


async def test_the_assigned_unit_accepts_a_matter_once_and_the_event_says_who(
    assignment: httpx.AsyncClient, settings: Settings
) -> None:
    matter = await a_matter(assignment, settings)
    base = f"/api/v1/issues/{matter['issue_id']}"
    assert matter["accepted_by"] is None

    accepted = await assignment.post(f"{base}/acceptance", json={"on_behalf_of": "刘伟"})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["assignment"]["accepted_by"] is not None
    again = await assignment.post(f"{base}/acceptance", json={})
    assert again.status_code == 409
    assert "already accepted" in again.json()["detail"]
    missing = await assignment.post(f"/api/v1/issues/{new_id()}/acceptance", json={})
    assert missing.status_code == 404

    history = await eventually(
        lambda: events_of(settings, matter["issue_id"]), lambda e: len(e) == 3
    )
    assert history[2]["type"] == "minqing.issue.accepted"
    data = history[2]["data"]
    assert (data["unit"], data["assignment_no"], data["on_behalf_of"]) == (
        "town_construction",
        1,
        "刘伟",
    )
    assert data["accepted_by"] == history[2]["actor"]
    assert history[2]["correlationid"] == history[0]["id"]


async def test_send_back_then_re_route_and_extension_with_their_refusals(
    assignment: httpx.AsyncClient, settings: Settings
) -> None:
    matter = await a_matter(assignment, settings)
    base = f"/api/v1/issues/{matter['issue_id']}"

    wrong_unit = await assignment.post(
        f"{base}/send-back", json={"unit": "water_station", "reason": "no", "by": "Sun"}
    )
    assert wrong_unit.status_code == 409
    assert "only the assigned unit" in wrong_unit.json()["detail"]
    sent = await assignment.post(
        f"{base}/send-back",
        json={"unit": "town_construction", "reason": "the lamp is private", "by": "Liu"},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["assignment"]["sent_back_reason"] == "the lamp is private"
    assert sent.json()["assignment"]["unit"] == "town_construction"  # still on the hook
    again = await assignment.post(
        f"{base}/send-back", json={"unit": "town_construction", "reason": "no", "by": "Liu"}
    )
    assert again.status_code == 409

    moved = await assignment.post(
        f"{base}/reassign",
        json={"unit": "sanqi_branch", "reason": "the village's own lamp", "by": "town office"},
    )
    assert moved.status_code == 201, moved.text
    after = moved.json()["assignment"]
    assert (after["unit"], after["assignment_no"], after["rule_id"]) == (
        "sanqi_branch",
        2,
        "manual",
    )
    assert after["sent_back_reason"] is None

    extended = await assignment.post(
        f"{base}/extend-deadline",
        json={"working_days": 3, "reason": "waiting for a part", "by": "supervisor"},
    )
    assert extended.status_code == 201, extended.text
    assert extended.json()["assignment"]["deadline"] == "2026-12-09"

    history = await eventually(
        lambda: events_of(settings, matter["issue_id"]), lambda e: len(e) == 5
    )
    assert [m["type"] for m in history[1:]] == [
        "minqing.issue.assigned",
        "minqing.issue.sent_back",
        "minqing.issue.assigned",
        "minqing.issue.deadline_extended",
    ]
    assert history[4]["data"]["calendar"] == matter["calendar"]
    assert {m["correlationid"] for m in history} == {history[0]["id"]}  # one chain


async def test_unknown_matters_and_units_are_404_and_bad_input_422(
    assignment: httpx.AsyncClient, settings: Settings
) -> None:
    missing = f"/api/v1/issues/{new_id()}"
    body = {"unit": "town_construction", "reason": "r", "by": "b"}
    assert (await assignment.get(f"{missing}/assignment")).status_code == 404
    assert (await assignment.post(f"{missing}/send-back", json=body)).status_code == 404
    assert (await assignment.post(f"{missing}/reassign", json=body)).status_code == 404
    extend = {"working_days": 1, "reason": "r", "by": "b"}
    assert (await assignment.post(f"{missing}/extend-deadline", json=extend)).status_code == 404
    nobody = {"person_id": "p", "person_name": "P", "reason": "r", "by": "b"}
    assert (
        await assignment.put("/api/v1/units/nowhere/responsible", json=nobody)
    ).status_code == 404

    matter = await a_matter(assignment, settings)
    bad = await assignment.post(
        f"/api/v1/issues/{matter['issue_id']}/extend-deadline",
        json={"working_days": 0, "reason": "", "by": "b"},
    )
    assert bad.status_code == 422
    assert {e["loc"][-1] for e in bad.json()["detail"]} == {"working_days", "reason"}
    bad_unit = await assignment.post(
        f"/api/v1/issues/{matter['issue_id']}/reassign",
        json={"unit": "the_mayor", "reason": "r", "by": "b"},
    )
    assert bad_unit.status_code == 422
    assert "xuma_branch" in bad_unit.json()["detail"][0]["msg"]  # the valid codes listed


async def test_the_registry_is_seeded_and_a_new_secretary_takes_over_open_matters(
    assignment: httpx.AsyncClient, settings: Settings
) -> None:
    async def units() -> dict[str, dict[str, Any]]:
        return {u["code"]: u for u in (await assignment.get("/api/v1/units")).json()}

    seeded = await eventually(units, lambda u: "sanqi_branch" in u)
    assert seeded["sanqi_branch"]["person_id"] == "sanqi-secretary"
    assert seeded["town_organ_branch"]["kind"] == "office"
    matter = await a_matter(assignment, settings)  # the Sanqi secretary answers for it

    changed = await assignment.put(
        "/api/v1/units/sanqi_branch/responsible",
        json={
            "person_id": "sanqi-secretary-2",
            "person_name": "赵敏 Zhao Min",
            "reason": "elected at the branch meeting",
            "by": "town organisation office",
        },
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["open_matters_moved"] == 1
    assert (await units())["sanqi_branch"]["person_name"] == "赵敏 Zhao Min"
    now = await assignment_of(assignment, matter["issue_id"])
    assert now is not None and now["responsible_person_id"] == "sanqi-secretary-2"
    [unit_event] = await eventually(
        lambda: events_of(settings, "sanqi_branch"), lambda e: len(e) == 1
    )
    assert unit_event["type"] == "minqing.unit.responsible_changed"
    assert unit_event["data"]["previous_person_id"] == "sanqi-secretary"
    assert unit_event["actor"] == "person:desk"  # the caller, whatever the body says
    assert unit_event["data"]["on_behalf_of"] == "town organisation office"
    issue_history = await eventually(
        lambda: events_of(settings, matter["issue_id"]), lambda e: len(e) == 3
    )
    assert issue_history[2]["type"] == "minqing.issue.responsible_changed"


async def test_followup_learns_an_extended_deadline(
    assignment: httpx.AsyncClient, settings: Settings
) -> None:
    async with serve(create_followup(settings, clock=lambda: FRIDAY_MORNING)) as followup:
        matter = await a_matter(assignment, settings)

        async def deadline() -> str | None:
            response = await followup.get(f"/api/v1/issues/{matter['issue_id']}/case")
            return response.json()["deadline"] if response.status_code == 200 else None

        await eventually(deadline, lambda d: d == "2026-12-04")
        await assignment.post(
            f"/api/v1/issues/{matter['issue_id']}/extend-deadline",
            json={"working_days": 3, "reason": "parts", "by": "supervisor"},
        )
        await eventually(deadline, lambda d: d == "2026-12-09")


async def test_a_plan_past_the_deadline_is_refused_unless_the_deadline_is_to_follow_it(
    assignment: httpx.AsyncClient, settings: Settings
) -> None:
    async with serve(create_followup(settings, clock=lambda: FRIDAY_MORNING)) as followup:
        matter = await a_matter(assignment, settings)  # street lights: 5 working days
        issue_id = matter["issue_id"]

        async def case() -> dict[str, Any]:
            response = await followup.get(f"/api/v1/issues/{issue_id}/case")
            return dict(response.json()) if response.status_code == 200 else {}

        await eventually(case, lambda c: c.get("deadline") == "2026-12-04")
        plan = {
            "set_by": "town-office",
            "milestones": [
                {"title": "Survey", "working_days": 3},
                {"title": "New cable laid", "working_days": 12},
            ],
        }
        refused = await followup.put(f"/api/v1/issues/{issue_id}/plan", json=plan)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert "due 2026-12-15, after the matter's deadline 2026-12-04" in detail

        why = "the cable has to be ordered"
        plan["extend_deadline_reason"] = why
        assert (await followup.put(f"/api/v1/issues/{issue_id}/plan", json=plan)).is_success
        # Assignment moves the deadline to the plan's last step; followup learns it.
        moved = await eventually(
            lambda: assignment_of(assignment, issue_id),
            lambda a: a is not None and a["deadline"] == "2026-12-15",
        )
        assert moved is not None and moved["working_days"] == 12
        await eventually(case, lambda c: c.get("deadline") == "2026-12-15")
        history = await eventually(lambda: events_of(settings, issue_id), lambda e: len(e) == 4)
        plan_set, extended = history[2], history[3]
        assert [plan_set["type"], extended["type"]] == [
            "minqing.issue.plan_set",
            "minqing.issue.deadline_extended",
        ]
        assert extended["causationid"] == plan_set["id"]
        assert extended["correlationid"] == history[0]["id"]
        assert extended["data"] | {"calendar": "-"} == {
            "previous_deadline": "2026-12-04",
            "deadline": "2026-12-15",
            "extra_working_days": 7,
            "calendar": "-",
            "provisional": False,
            "note": None,
            "reason": why,
            "extended_by": "person:desk",  # who set the plan
            "on_behalf_of": "town-office",  # as they named the one on the ground
            "assignment_no": 1,
        }
