"""End to end: four service processes, real NATS and PostgreSQL, driven only over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from minqing.shared.service.settings import SERVICES
from tests.support.actors import assert_actors_are_principals
from tests.support.harness import fresh_database, isolated_settings
from tests.support.identity import AS, DESK
from tests.support.otlp import ReceivedSpan, otlp_receiver
from tests.support.processes import ServiceProcess, poll, running_services

pytestmark = pytest.mark.e2e


class Town:
    """The system as its users meet it: four HTTP APIs."""

    def __init__(self, services: dict[str, ServiceProcess]) -> None:
        self.url = {name: s.url for name, s in services.items()}
        self.reported: dict[str, str] = {}  # issue id -> the event id of its report

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
        issue_id = str(response.json()["issue_id"])
        self.reported[issue_id] = str(response.json()["event_id"])
        return issue_id

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
REPORTER_ADDRESS = "18 Lotus Pond Lane"
REPORTER_STORY = "Her late husband's pension stopped coming in the ninth month"
PERSONAL = (REPORTER_NAME, REPORTER_PHONE, REPORTER_ADDRESS, REPORTER_STORY)


@pytest.fixture(scope="module")
async def town(
    nats_url: str, server_db_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Town]:
    """One set of the four service processes for the module (each test reports matters of
    its own), exporting traces to a receiver of the test's own (OTLP/HTTP); every event they
    recorded names a principal as its actor; every line they logged is a JSON object with
    the ids bound, and none holds a reporter's name, phone, address or story; each matter
    reported is one trace across the four services."""
    logs = tmp_path_factory.mktemp("loop")
    with otlp_receiver() as collector, pytest.MonkeyPatch.context() as environment:
        environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)  # the processes'
        environment.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # milliseconds between exports
        async with fresh_database(server_db_url, template_db) as url:
            settings = isolated_settings(nats_url, url)
            with running_services(settings, logs) as services:
                town = Town(services)
                yield town
            await assert_actors_are_principals(settings)
        spans = collector.received()
    lines = logged_lines(logs)
    assert set(lines) == set(SERVICES)
    for service, logged in lines.items():
        for line in logged:
            assert not any(secret in json.dumps(line, ensure_ascii=False) for secret in PERSONAL)
            assert line["service"] == service, line
            assert {"timestamp", "level", "logger", "message"} <= line.keys(), line
    for issue_id, event_id in town.reported.items():
        trace_id = assert_one_trace(spans, event_id)
        [access] = [
            line
            for line in lines["intake"]
            if line.get("http_route") == "/api/v1/reports" and line.get("issue_id") == issue_id
        ]
        assert access["event_id"] == event_id and access["correlation_id"] == event_id
        assert access["trace_id"] == trace_id and access["span_id"]
    for span in spans:
        assert not any(secret in str(span.attributes) for secret in PERSONAL), span.name


def logged_lines(folder: Path) -> dict[str, list[dict[str, object]]]:
    """Each service's log, every line read as the JSON object it must be."""
    lines: dict[str, list[dict[str, object]]] = {}
    for path in folder.glob("*.log"):
        text = path.read_text(errors="replace")
        lines[path.stem] = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert all(isinstance(line, dict) for line in lines[path.stem]), path.name
    return lines


def assert_one_trace(spans: list[ReceivedSpan], event_id: str) -> str:
    """The report's trace: its request at the root, each span's parent in it, and spans of
    all four services (each consumer's, and the publishes in between); returns its id."""
    [written] = [
        s
        for s in spans
        if s.name == "outbox write" and event_id in s.attributes["minqing.event_ids"]
    ]
    trace = [s for s in spans if s.trace_id == written.trace_id]
    [root] = [s for s in trace if not s.parent_id]
    assert (root.service, root.kind, root.name) == (
        "minqing-intake",
        "SERVER",
        "POST /api/v1/reports",
    )
    ids = {s.span_id for s in trace}
    assert all(s.parent_id in ids for s in trace if s is not root)
    assert {s.service for s in trace} == {f"minqing-{name}" for name in SERVICES}
    consumed_by = {s.service for s in trace if s.kind == "CONSUMER"}
    assert consumed_by == {
        "minqing-assignment",
        "minqing-followup",
        "minqing-projection",
        "minqing-intake",
    }
    assert any(s.kind == "PRODUCER" and s.service == "minqing-assignment" for s in trace)
    return written.trace_id


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
    issue_id = town.report(
        reporter={"name": REPORTER_NAME, "phone": REPORTER_PHONE},
        description=REPORTER_STORY,
        location={"address": REPORTER_ADDRESS, "lat": 33.51, "lon": 119.21},
    )
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
