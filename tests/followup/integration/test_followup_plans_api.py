"""Followup's major affairs, money and look-back over HTTP on real NATS and PostgreSQL:
plans from templates and from supervisors, progress, funds and their totals, resolution
fields, the look-back by another unit, and milestones going overdue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from minqing.services.followup.app import create_app
from minqing.shared.contract.events import IssueAssigned
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.support.events import FRIDAY_MORNING, envelope, publish, reported
from tests.support.harness import eventually, serve, stream_messages
from tests.support.identity import AS


class Clock:
    """A clock the test moves on."""

    def __init__(self) -> None:
        self.now = FRIDAY_MORNING

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def followup(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    fast = settings.model_copy(update={"deadline_check_seconds": 0.1})
    async with serve(create_app(fast, clock=clock)) as client:
        yield client


async def case_of(client: httpx.AsyncClient, issue_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/issues/{issue_id}/case")
    return response.json() if response.status_code == 200 else {}


async def an_assigned_matter(
    client: httpx.AsyncClient, settings: Settings, plan: str | None = None
) -> str:
    issue_id = new_id()
    assigned = IssueAssigned(
        unit="town_construction",
        responsible_person_id="xuma-secretary",
        responsible_person_name="Xu Haijun",
        deadline=date(2026, 12, 18),
        working_days=15,
        assignment_no=1,
        reason="routed on report",
        category="roads",
        village="xuma",
        calendar="weekdays",
        plan_template=plan,
    )
    await publish(
        settings,
        reported(issue_id),
        envelope(assigned, issue_id, actor="service:assignment", service="assignment"),
    )
    await eventually(
        lambda: case_of(client, issue_id),
        lambda c: c.get("status") == "assigned" and (plan is None or bool(c["milestones"])),
    )
    return issue_id


async def test_a_bridge_plan_from_its_template_goes_overdue_by_milestone(
    followup: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    issue_id = await an_assigned_matter(followup, settings, plan="bridge_rebuild")
    case = await case_of(followup, issue_id)
    assert case["plan_template"] == "bridge_rebuild"
    assert [m["due"] for m in case["milestones"]][:2] == ["2026-12-11", "2026-12-25"]
    assert case["milestones"][3]["responsible_id"] == "xuma-secretary"

    clock.now = datetime(2026, 12, 14, 1, 0, tzinfo=UTC)  # the Monday after the first due
    case = await eventually(
        lambda: case_of(followup, issue_id), lambda c: c["milestones"][0]["escalation_level"] == 1
    )
    assert case["milestones"][0]["overdue"] is True
    assert [m["overdue"] for m in case["milestones"][1:]] == [False, False, False]
    assert case["status"] == "assigned"  # the matter's own deadline is still ahead


async def test_a_supervisor_plans_progress_is_reported_and_refused_with_reasons(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await an_assigned_matter(followup, settings)
    plan = {
        "set_by": "town-office",
        "milestones": [
            {"title": "Survey", "working_days": 5},
            {"title": "Works", "working_days": 20, "responsible": "village_secretary"},
        ],
    }
    # The works end on 25 December, after the matter's deadline of 18 December.
    beyond = await followup.put(f"/api/v1/issues/{issue_id}/plan", json=plan)
    assert beyond.status_code == 422, beyond.text
    assert beyond.json()["detail"].startswith(
        "the plan's last step is due 2026-12-25, after the matter's deadline 2026-12-18"
    )
    assert (await case_of(followup, issue_id))["milestones"] == []
    why = "the works need four weeks"
    response = await followup.put(
        f"/api/v1/issues/{issue_id}/plan", json={**plan, "extend_deadline_reason": why}
    )
    assert response.status_code == 200, response.text

    async def plans_set() -> list[dict[str, Any]]:
        messages = [json.loads(m.data) for m in await stream_messages(settings)]
        return [m for m in messages if m["type"] == "minqing.issue.plan_set"]

    [plan_set] = await eventually(plans_set, lambda found: len(found) == 1)
    assert (plan_set["subject"], plan_set["data"]["extend_deadline_reason"]) == (issue_id, why)

    progress = {"milestone": 1, "note": "surveyed", "done": True, "reported_by": "wu"}
    done = await followup.post(f"/api/v1/issues/{issue_id}/progress", json=progress)
    assert done.status_code == 201, done.text
    case = await case_of(followup, issue_id)
    assert [(m["due"], m["done"]) for m in case["milestones"]] == [
        ("2026-12-04", True),
        ("2026-12-25", False),
    ]

    missing = await followup.post(
        f"/api/v1/issues/{issue_id}/progress", json={**progress, "milestone": 3}
    )
    assert missing.status_code == 409
    assert "milestones 1 to 2" in missing.json()["detail"]
    unknown = await followup.put(
        f"/api/v1/issues/{issue_id}/plan", json={"set_by": "s", "template": "moon_base"}
    )
    assert unknown.status_code == 422
    assert "bridge_rebuild" in unknown.json()["detail"]
    both = await followup.put(
        f"/api/v1/issues/{issue_id}/plan", json={**plan, "template": "road_repair"}
    )
    assert both.status_code == 422
    nobody = await followup.put(
        f"/api/v1/issues/{issue_id}/plan",
        json={
            "set_by": "s",
            "milestones": [{"title": "x", "working_days": 1, "responsible": "person"}],
        },
    )
    assert nobody.status_code == 422
    assert "person_id and person_name" in nobody.text


async def test_funds_are_recorded_per_matter_and_totalled_by_source(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    bridge = await an_assigned_matter(followup, settings)
    wishes = await an_assigned_matter(followup, settings)
    money = {
        "amount": "450000",
        "source": "project_funds",
        "status": "applied",
        "recorded_by": "wu",
    }
    applied = await followup.post(f"/api/v1/issues/{bridge}/funding", json=money)
    assert applied.status_code == 201, applied.text
    funding_id = applied.json()["funding_id"]  # what moves this entry on, from the answer
    assert (await case_of(followup, bridge))["funds"][0]["funding_id"] == funding_id
    await followup.post(
        f"/api/v1/issues/{wishes}/funding",
        json={**money, "amount": "260000.00", "source": "social_donations", "status": "received"},
    )
    approved = await followup.post(
        f"/api/v1/issues/{bridge}/funding",
        json={**money, "status": "approved", "funding_id": funding_id},
    )
    assert approved.status_code == 201
    assert (approved.json()["funding_id"], approved.json()["issue_id"]) == (funding_id, bridge)
    assert [f["status"] for f in (await case_of(followup, bridge))["funds"]] == ["approved"]
    changed = await followup.post(
        f"/api/v1/issues/{bridge}/funding",
        json={**money, "amount": "1", "status": "spent", "funding_id": funding_id},
    )
    assert changed.status_code == 409
    bad = await followup.post(
        f"/api/v1/issues/{bridge}/funding", json={**money, "amount": "1.001", "source": "luck"}
    )
    assert bad.status_code == 422
    assert {e["loc"][-1] for e in bad.json()["detail"]} == {"amount", "source"}

    funds = (await followup.get("/api/v1/funds")).json()
    totals = [(t["source"], t["status"], Decimal(t["amount"])) for t in funds["totals"]]
    assert totals == [
        ("project_funds", "approved", Decimal(450000)),
        ("social_donations", "received", Decimal(260000)),
    ]
    assert {k: Decimal(v) for k, v in funds["by_source"].items()} == {
        "project_funds": Decimal(450000),
        "social_donations": Decimal(260000),
    }


async def test_a_resolution_with_evidence_is_looked_back_by_another_unit(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await an_assigned_matter(followup, settings)
    resolution = {
        "unit": "town_construction",
        "summary": "Bridge rebuilt",
        "on_behalf_of": "Wu, the works foreman",
        "evidence": ["https://example.org/bridge.jpg"],
        "cost": "150000.50",
        "funding_source": "project_funds",
    }
    bad = await followup.post(
        f"/api/v1/issues/{issue_id}/resolution",
        json={**resolution, "evidence": ["ftp://x/y"], "cost": "-1"},
    )
    assert bad.status_code == 422
    assert {e["loc"][1] for e in bad.json()["detail"]} == {"evidence", "cost"}

    done = await followup.post(
        f"/api/v1/issues/{issue_id}/resolution", json=resolution, headers=AS["construction"]
    )
    assert done.status_code == 201, done.text
    case = await case_of(followup, issue_id)
    assert (case["resolved_by"], case["lookback_unit"]) == ("person:construction", "grid_center")

    # Line staff of the resolving unit may not look back on its resolution.
    visit = {"outcome": "passed", "notes": ""}
    refused = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback", json=visit, headers=AS["construction_line"]
    )
    assert refused.status_code == 409
    assert "belongs to town_construction, which resolved the matter" in refused.json()["detail"]
    passed = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={**visit, "on_behalf_of": "grid-li"},
        headers=AS["line"],
    )
    assert passed.json()["status"] == "closed"
