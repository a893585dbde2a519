"""End to end: four service processes, real NATS and PostgreSQL, driven only over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from minqing.shared.service.settings import SERVICES
from tests.support.actors import assert_actors_are_principals
from tests.support.harness import fresh_database, isolated_settings
from tests.support.identity import AS, DESK
from tests.support.processes import ServiceProcess, poll, running_services

pytestmark = pytest.mark.e2e


class Town:
    """The system as its users meet it: four HTTP APIs."""

    def __init__(self, services: dict[str, ServiceProcess]) -> None:
        self.url = {name: s.url for name, s in services.items()}

    def report(self, **fields: Any) -> str:
        body = {
            "title": "Nobody to harvest the rice",
            "description": "The family's working members cannot come home for the harvest.",
            "category": "farming_help",
            "village": "qizhuang",
            "source": "grid_center",
            **fields,
        }
        response = httpx.post(f"{self.url['intake']}/api/v1/reports", json=body, headers=DESK)
        assert response.status_code == 201, response.text
        return str(response.json()["issue_id"])

    def history(self, issue_id: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url['projection']}/api/v1/issues/{issue_id}/history", headers=DESK
        )
        return list(response.json()["events"]) if response.status_code == 200 else []

    def issue(self, issue_id: str) -> dict[str, Any]:
        return dict(
            httpx.get(f"{self.url['projection']}/api/v1/issues/{issue_id}", headers=DESK).json()
        )

    def types(self, issue_id: str) -> list[str]:
        return [e["type"].removeprefix("minqing.") for e in self.history(issue_id)]

    def wait_for_types(self, issue_id: str, *expected: str) -> list[dict[str, Any]]:
        poll(lambda: self.types(issue_id), lambda got: got == list(expected))
        return self.history(issue_id)

    def wait_until_assigned(self, issue_id: str, number: int) -> None:
        def case() -> dict[str, Any]:
            response = httpx.get(
                f"{self.url['followup']}/api/v1/issues/{issue_id}/case", headers=DESK
            )
            return dict(response.json()) if response.status_code == 200 else {}

        poll(case, lambda c: c.get("status") == "assigned" and c["assignment_no"] == number)

    def resolve(self, issue_id: str, unit: str) -> httpx.Response:
        return httpx.post(
            f"{self.url['followup']}/api/v1/issues/{issue_id}/resolution",
            json={
                "unit": unit,
                "summary": "Eight volunteers harvested the rice",
                "resolved_by": "li",
            },
            headers=DESK,
        )

    def lookback(self, issue_id: str, outcome: str, notes: str) -> httpx.Response:
        return httpx.post(
            f"{self.url['followup']}/api/v1/issues/{issue_id}/lookback",
            json={"outcome": outcome, "visitor": "grid-worker-3", "notes": notes},
            headers=AS["line"],
        )


REPORTER_NAME, REPORTER_PHONE = "Zhang Xiuying", "13812345678"


@pytest.fixture(scope="module")
async def town(
    nats_url: str, server_db_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Town]:
    """One set of the four service processes for the module (each test reports matters of
    its own); every event they recorded names a principal as its actor, and no log line of
    theirs holds a reporter's name or phone."""
    logs = tmp_path_factory.mktemp("loop")
    async with fresh_database(server_db_url, template_db) as url:
        settings = isolated_settings(nats_url, url)
        with running_services(settings, logs) as services:
            yield Town(services)
        await assert_actors_are_principals(settings)
    written = {path.name: path.read_text(errors="replace") for path in logs.glob("*.log")}
    assert set(written) == {f"{name}.log" for name in SERVICES}
    for name, text in written.items():
        assert REPORTER_NAME not in text and REPORTER_PHONE not in text, name


def test_two_matters_go_round_the_loop_one_of_them_twice(town: Town) -> None:
    straight = town.report()
    detour = town.report(village="xuma", category="land_dispute", source="mediation_center")

    for issue_id in (straight, detour):
        town.wait_for_types(issue_id, "issue.reported", "issue.assigned")
        town.wait_until_assigned(issue_id, 1)

    assert town.resolve(straight, "rural_revitalization").status_code == 201
    assert town.lookback(straight, "passed", "Rice is in").status_code == 201

    assert town.resolve(detour, "mediation_center").status_code == 201
    failed = town.lookback(detour, "failed", "The harvester still cannot reach the field")
    assert failed.status_code == 201
    town.wait_until_assigned(detour, 2)
    assert town.resolve(detour, "mediation_center").status_code == 201
    assert town.lookback(detour, "passed", "Road padded, harvester got in").status_code == 201

    loop = ["issue.reported", "issue.assigned", "issue.resolved", "issue.lookback_passed"]
    history = town.wait_for_types(straight, *loop)
    assert town.issue(straight)["status"] == "closed"
    # who did each step: the authenticated callers and the service that routed it; the
    # names the bodies gave are kept beside them
    assert [e["actor"] for e in history] == [
        "person:desk",
        "service:assignment",
        "person:desk",
        "person:line",
    ]
    assert [e["data"].get("on_behalf_of") for e in history] == [
        None,
        None,
        "li",
        "grid-worker-3",
    ]
    assert [e["source"] for e in history] == [
        "/minqing/intake",
        "/minqing/assignment",
        "/minqing/followup",
        "/minqing/followup",
    ]
    positions = [e["position"] for e in history]
    assert positions == sorted(positions) and len(set(positions)) == 4
    # Every event after the first was caused by the one before it, in one correlation.
    assert [e["causationid"] for e in history[1:]] == [e["id"] for e in history[:-1]]
    assert {e["correlationid"] for e in history} == {history[0]["id"]}

    detour_history = town.wait_for_types(
        detour,
        "issue.reported",
        "issue.assigned",
        "issue.resolved",
        "issue.lookback_failed",
        "issue.assigned",
        "issue.resolved",
        "issue.lookback_passed",
    )
    assert detour_history[4]["data"]["assignment_no"] == 2
    assert "harvester still cannot reach" in detour_history[4]["data"]["reason"]
    assert detour_history[4]["data"]["unit"] == "mediation_center"
    issue = town.issue(detour)
    assert issue["status"] == "closed"
    assert issue["assignment_no"] == 2


def test_wrong_steps_are_refused_with_reasons(town: Town) -> None:
    # A reporter who is answered at each step (the replies go to the log: see the fixture)
    issue_id = town.report(reporter={"name": REPORTER_NAME, "phone": REPORTER_PHONE})
    town.wait_until_assigned(issue_id, 1)
    early_lookback = town.lookback(issue_id, "passed", "")
    assert early_lookback.status_code == 409
    assert "after resolution" in early_lookback.json()["detail"]
    other_unit = town.resolve(issue_id, "civil_affairs")
    assert other_unit.status_code == 409
    assert "assigned to rural_revitalization" in other_unit.json()["detail"]
    unknown = town.resolve("01NOSUCHMATTER0000000000000", "rural_revitalization")
    assert unknown.status_code == 404
    assert town.resolve(issue_id, "rural_revitalization").status_code == 201
    assert town.resolve(issue_id, "rural_revitalization").status_code == 409
    assert town.lookback(issue_id, "passed", "fine").status_code == 201
    closed = town.lookback(issue_id, "failed", "changed my mind")
    assert closed.status_code == 409
    assert "closed" in closed.json()["detail"]
