"""`minqing up` as a new user runs it: embedded NATS and PostgreSQL, four services, stop, restart.

Nothing from the test session's servers is used: `up` must start its own nats-server and
PostgreSQL under the data dir, run the migrations, start the services, stop every process it
started on Ctrl-C (SIGINT to its process group, as a terminal sends it) and on SIGTERM, and
find the data again when run a second time on the same data dir.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from minqing.shared.service.infra import port_is_free
from minqing.shared.service.settings import SERVICES
from tests.support.identity import AS, DESK
from tests.support.processes import poll
from tests.support.up import Up, alive

pytestmark = pytest.mark.e2e

LOOP = ["issue.reported", "issue.assigned", "issue.resolved", "issue.lookback_passed"]


# ------------------------------------------------------------------------------ the matter


def history(up: Up, issue_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{up.url['projection']}/api/v1/issues/{issue_id}/history", timeout=5, headers=DESK
    )
    return list(response.json()["events"]) if response.status_code == 200 else []


def types(up: Up, issue_id: str) -> list[str]:
    return [e["type"].removeprefix("minqing.") for e in history(up, issue_id)]


def projected(up: Up, issue_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{up.url['projection']}/api/v1/issues/{issue_id}", timeout=5, headers=DESK
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def case(up: Up, issue_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{up.url['followup']}/api/v1/issues/{issue_id}/case", timeout=5, headers=DESK
    )
    return dict(response.json()) if response.status_code == 200 else {}


def report(up: Up) -> str:
    body = {
        "title": "Nobody to harvest the rice",
        "description": "The family's working members cannot come home for the harvest.",
        "category": "farming_help",
        "village": "qizhuang",
        "source": "grid_center",
    }
    response = httpx.post(f"{up.url['intake']}/api/v1/reports", json=body, timeout=5, headers=DESK)
    assert response.status_code == 201, response.text
    return str(response.json()["issue_id"])


def round_the_loop(up: Up) -> str:
    issue_id = report(up)
    poll(lambda: types(up, issue_id), lambda got: got == LOOP[:2])
    assigned = poll(lambda: case(up, issue_id), lambda c: c.get("status") == "assigned")
    resolution = httpx.post(
        f"{up.url['followup']}/api/v1/issues/{issue_id}/resolution",
        json={"unit": assigned["unit"], "summary": "Volunteers harvested it", "resolved_by": "li"},
        timeout=5,
        headers=DESK,
    )
    assert resolution.status_code == 201, resolution.text
    lookback = httpx.post(
        f"{up.url['followup']}/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "passed", "visitor": "grid-worker-3", "notes": "Rice is in"},
        timeout=5,
        headers=AS["line"],
    )
    assert lookback.status_code == 201, lookback.text
    poll(lambda: types(up, issue_id), lambda got: got == LOOP)
    return issue_id


def through_the_front_door(up: Up) -> None:
    """A matter reported and followed to its close through the one address people use."""
    with httpx.Client(base_url=up.front, timeout=5, headers=DESK) as front:
        desk = front.get("/")
        assert desk.status_code == 200 and "<title>民情 · 台账</title>" in desk.text
        assert "script-src 'self'" in desk.headers["content-security-policy"]
        assert desk.headers["x-frame-options"] == "DENY" and "server" not in desk.headers
        body = {
            "title": "The well pump in Qizhuang is broken",
            "description": "No water since Monday.",
            "category": "water",
            "village": "qizhuang",
            "source": "grid_center",
        }
        reported = front.post("/api/v1/reports", json=body)  # intake
        assert reported.status_code == 201, reported.text
        issue_id = reported.json()["issue_id"]
        assigned = poll(  # followup
            lambda: front.get(f"/api/v1/issues/{issue_id}/case").json(),
            lambda c: c.get("status") == "assigned",
        )
        assignment = front.get(f"/api/v1/issues/{issue_id}/assignment")  # assignment
        assert assignment.status_code == 200 and assignment.json()["unit"] == assigned["unit"]
        resolved = front.post(
            f"/api/v1/issues/{issue_id}/resolution",
            json={"unit": assigned["unit"], "summary": "Pump replaced", "resolved_by": "li"},
        )
        assert resolved.status_code == 201, resolved.text
        looked = front.post(
            f"/api/v1/issues/{issue_id}/lookback",
            json={"outcome": "passed", "visitor": "grid-worker-3", "notes": "Water runs"},
            headers=AS["line"],
        )
        assert looked.status_code == 201, looked.text
        poll(  # projection
            lambda: front.get(f"/api/v1/issues/{issue_id}").json().get("status"),
            lambda status: status == "closed",
        )
        # the trail is another read model (its own consumer): it may be a step behind
        trail = poll(
            lambda: front.get(f"/api/v1/issues/{issue_id}/history").json()["events"],
            lambda events: len(events) >= len(LOOP),
        )
        assert [e["type"].removeprefix("minqing.") for e in trail] == LOOP
        # The operations endpoints under each service's name; health and metrics not at all.
        assert front.get("/intake/api/v1/dead-letters").status_code == 200
        assert front.get("/healthz").status_code == 404
        assert front.get("/intake/metrics").status_code == 404


# ------------------------------------------------------------------------------------ test


def test_up_runs_stops_and_restarts_the_whole_system(tmp_path: Path) -> None:
    up = Up(tmp_path)
    timings: dict[str, float] = {}
    try:
        # First run: nothing exists yet.
        up.start()
        timings["first start"] = up.wait_ready()
        printed = up.output()
        assert f"Open {up.front}/ : the desk" in printed, printed  # the one URL people use
        if not port_is_free(4222):  # here the system's nats-server has it
            assert "port 4222 is taken, using free port" in printed, printed
        assert "embedded nats-server at nats://127.0.0.1:" in printed, printed
        assert "PostgreSQL: embedded at" in printed, printed
        assert (up.data_dir / "nats" / "jetstream").is_dir()
        assert (up.data_dir / "postgres" / "PG_VERSION").is_file()
        names = {" ".join(p.cmdline()) for p in up.descendants() if alive(p)}
        assert any("nats-server" in n for n in names), names
        assert any("postgres" in n for n in names), names
        assert any("caddy run" in n for n in names), names
        for service in SERVICES:
            assert any(f"minqing serve {service}" in n for n in names), (service, names)

        started = time.monotonic()
        issue_id = round_the_loop(up)
        timings["loop"] = time.monotonic() - started
        started = time.monotonic()
        through_the_front_door(up)
        timings["loop through the front door"] = time.monotonic() - started
        first = history(up, issue_id)
        assert projected(up, issue_id)["status"] == "closed"
        assert [e["type"].removeprefix("minqing.") for e in first] == LOOP
        messages = up.stream_messages()
        assert messages >= len(LOOP)

        # Ctrl-C.
        code, timings["stop on SIGINT"] = up.stop(signal.SIGINT, whole_group=True)
        assert code == 130, up.output()
        assert "Traceback" not in up.output(), up.output()

        # Second run on the same data dir: the matter is still there, and the system works.
        up.start()
        timings["restart"] = up.wait_ready()
        issue = projected(up, issue_id)
        assert issue["status"] == "closed"
        again = history(up, issue_id)
        assert [e["id"] for e in again] == [e["id"] for e in first]
        assert case(up, issue_id).get("status") == "closed"
        assert up.stream_messages() == messages
        newcomer = report(up)
        poll(lambda: types(up, newcomer), lambda got: got == LOOP[:2])

        # SIGTERM, as `kill <pid>` sends it.
        code, timings["stop on SIGTERM"] = up.stop(signal.SIGTERM, whole_group=False)
        assert code == 143, up.output()
        assert "Traceback" not in up.output(), up.output()
    finally:
        up.kill_everything()
        print("timings:", {k: round(v, 2) for k, v in timings.items()})
