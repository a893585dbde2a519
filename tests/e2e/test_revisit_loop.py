"""End to end: a failed re-visit reopens a closed matter. Four service processes, real NATS
and PostgreSQL, replies to a real webhook receiver, driven only over HTTP: a matter goes
round the loop to closed; its reporter, answered, scores it 1 from the reply's link; line
staff find the re-visit on their list and record it failed; the matter goes back to the
same unit with a new deadline (assignment 2), the reporter's follow page says reopened
with what the visitor found, the channels' status is open again, and the projection's
state and trail say so; the unit resolves it again, a
normal look-back passes, and it is closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from minqing.shared.service.settings import SERVICES, Settings
from tests.support.actors import assert_actors_are_principals
from tests.support.harness import fresh_database, isolated_settings
from tests.support.identity import AS, DESK, enrol_at
from tests.support.processes import ServiceProcess, poll, process_env
from tests.support.webhook import Receiver, webhook_receiver

pytestmark = pytest.mark.e2e


class Town:
    def __init__(self, services: dict[str, ServiceProcess], receiver: Receiver) -> None:
        self.url = {name: s.url for name, s in services.items()}
        self.receiver = receiver

    def get(self, service: str, path: str, headers: dict[str, str] = DESK) -> httpx.Response:
        return httpx.get(f"{self.url[service]}{path}", headers=headers)

    def post(
        self, service: str, path: str, body: dict[str, Any], headers: dict[str, str] = DESK
    ) -> httpx.Response:
        return httpx.post(f"{self.url[service]}{path}", json=body, headers=headers)

    def case(self, issue_id: str) -> dict[str, Any]:
        found = self.get("followup", f"/api/v1/issues/{issue_id}/case")
        return dict(found.json()) if found.status_code == 200 else {}

    def types(self, issue_id: str) -> list[str]:
        found = self.get("projection", f"/api/v1/issues/{issue_id}/history")
        events = found.json()["events"] if found.status_code == 200 else []
        return [e["type"].removeprefix("minqing.") for e in events]

    def lookback(self, issue_id: str, outcome: str, notes: str) -> httpx.Response:
        body = {"outcome": outcome, "notes": notes}
        return self.post("followup", f"/api/v1/issues/{issue_id}/lookback", body, AS["line"])

    def resolve(self, issue_id: str) -> None:
        body = {"unit": "rural_revitalization", "summary": "Eight volunteers harvested it"}
        done = self.post("followup", f"/api/v1/issues/{issue_id}/resolution", body)
        assert done.status_code == 201, done.text

    def replies(self, stage: str) -> list[dict[str, Any]]:
        return [r for r in self.receiver.received if r["stage"] == stage]


@contextmanager
def answering_services(
    settings: Settings, receiver: Receiver, log_dir: Path
) -> Iterator[dict[str, ServiceProcess]]:
    """The four services as processes (as ``running_services``), intake answering the
    reporters through ``receiver`` with feedback links."""
    env = process_env(settings) | {
        "MINQING_NOTIFIER_KIND": "webhook",
        "MINQING_NOTIFIER_WEBHOOK_URL": receiver.url,
        "MINQING_NOTIFIER_ATTEMPTS": "1",
        "MINQING_REPLY_POLL_SECONDS": "0.1",
        "MINQING_REPLY_RETRY_MAX_SECONDS": "0.2",
        "MINQING_FEEDBACK_BASE_URL": "https://minqing.example",
    }
    enrol_at(settings.database_url)
    services = {name: ServiceProcess(name, env, log_dir) for name in SERVICES}
    try:
        for service in services.values():
            service.start()
        yield services
    finally:
        for service in services.values():
            service.terminate()
        for service in services.values():
            service.stop()


@pytest.fixture
async def town(
    nats_url: str, server_db_url: str, template_db: str, tmp_path: Path
) -> AsyncIterator[Town]:
    async with fresh_database(server_db_url, template_db) as url:
        settings = isolated_settings(nats_url, url)
        with webhook_receiver() as receiver, answering_services(settings, receiver, tmp_path) as s:
            yield Town(s, receiver)
        await assert_actors_are_principals(settings)


def test_a_failed_revisit_reopens_the_matter_and_it_goes_round_the_loop_again(
    town: Town,
) -> None:
    reported = town.post(
        "intake",
        "/api/v1/reports",
        {
            "title": "Nobody to harvest the rice",
            "description": "The family's working members cannot come home for the harvest.",
            "category": "farming_help",
            "village": "qizhuang",
            "source": "grid_center",
            "reporter": {"name": "Zhang Xiuying", "phone": "13812345678"},
        },
    )
    assert reported.status_code == 201, reported.text
    issue_id = reported.json()["issue_id"]
    poll(lambda: town.case(issue_id), lambda c: c.get("status") == "assigned")
    town.resolve(issue_id)
    assert town.lookback(issue_id, "passed", "Rice is in").status_code == 201

    # The reporter's answer on closing carries the feedback link: a score of 1.
    (closed_reply,) = poll(lambda: town.replies("closed"), lambda r: len(r) == 1)
    token = closed_reply["feedback_url"].rsplit("/", 1)[1]
    rated = town.post("intake", f"/api/v1/feedback/{token}", {"score": 1, "comment": "一半没收"})
    assert rated.status_code == 201, rated.text

    # Line staff find the re-visit on their list, go back, and find it not fixed.
    def revisits() -> list[dict[str, Any]]:
        mine = town.get("followup", "/api/v1/lookbacks/mine", AS["line"]).json()["tasks"]
        return [t for t in mine if t["issue_id"] == issue_id and t["kind"] == "revisit"]

    poll(revisits, lambda t: len(t) == 1)
    failed = town.lookback(issue_id, "failed", "东头两亩还没收")
    assert failed.status_code == 201, failed.text
    assert failed.json()["status"] == "reopened"

    # Back with the same unit, a new deadline, as a failed look-back sends it.
    case = poll(
        lambda: town.case(issue_id),
        lambda c: c.get("status") == "assigned" and c["assignment_no"] == 2,
    )
    assert case["unit"] == "rural_revitalization"
    assert revisits() == []
    poll(
        lambda: town.types(issue_id)[-2:],
        lambda t: t == ["issue.revisit_recorded", "issue.assigned"],
    )
    history = town.get("projection", f"/api/v1/issues/{issue_id}/history").json()["events"]
    reassigned = history[-1]["data"]
    assert reassigned["reason"] == "re-visit failed (person:line): 东头两亩还没收"
    assert reassigned["unit"] == "rural_revitalization"
    assert history[-2]["data"]["failures"] == 1
    issue = town.get("projection", f"/api/v1/issues/{issue_id}").json()
    assert (issue["status"], issue["assignment_no"]) == ("assigned", 2)
    assert issue["closed_at"] is None
    assert issue["deadline"] == reassigned["deadline"]

    # The reporter's follow page says it is being done again, with what was found.
    def follow() -> dict[str, Any]:
        return dict(town.get("intake", f"/api/v1/progress/{issue_id}", {}).json())

    page = poll(follow, lambda p: p["stage"] == "reopened" and p["deadline"] is not None)
    assert page["notes"] == "东头两亩还没收"
    assert page["deadline"] == reassigned["deadline"]
    # The channels' status is open again (reopened, then with the unit to its new deadline).
    status = town.get("intake", f"/open311/v2/requests/{issue_id}.json", {}).json()
    assert status[0]["status"] == "open"
    assert status[0]["expected_datetime"].startswith(reassigned["deadline"])

    # Round the loop again: resolved, a normal look-back, closed.
    town.resolve(issue_id)
    assert town.lookback(issue_id, "passed", "全部收完").status_code == 201
    poll(
        lambda: town.get("projection", f"/api/v1/issues/{issue_id}").json()["status"],
        lambda s: s == "closed",
    )
    steps = [t for t in town.types(issue_id) if t != "issue.reporter_replied"]
    assert steps == [
        "issue.reported",
        "issue.assigned",
        "issue.resolved",
        "issue.lookback_passed",
        "issue.feedback_recorded",
        "issue.revisit_flagged",
        "issue.revisit_recorded",
        "issue.assigned",
        "issue.resolved",
        "issue.lookback_passed",
    ]
    # answered again on its second resolution and its second closing
    poll(lambda: town.replies("closed"), lambda r: len(r) == 2)
    assert len(town.replies("resolved")) == 2
