"""deploy/compose.yaml run for real: the images built here with podman, the stack brought up
with podman-compose, and a matter taken round the loop through the front door by people
who log in, as the desk does.

What runs: the Minqing image (``localhost/minqing:test``, from the repository's
Containerfile on a local Python base), three clustered NATS nodes with R3 streams and
``sync_interval: always``, PostgreSQL, the migrations as a one-shot, two replicas of each
of the four services with their own NATS keys, and Caddy with the generated Caddyfile,
the only published port. NATS, PostgreSQL and Caddy are local stand-ins for the official
images (tests/support/containers.py): no image registry is reachable here.

Podman here is 4.3: the stack is started in the order the file's depends_on says, with its
conditions waited for by the test (tests/support/compose.py says why); a current engine
does that itself with ``up -d``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import SERVICES
from tests.support import containers
from tests.support.compose import Compose
from tests.support.paths import ROOT
from tests.support.servers import scratch_dir

CONTAINER_TESTS = "MINQING_CONTAINER_TESTS"
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
pytestmark = [
    pytest.mark.containers,
    # Builds images (minutes on a first run): only where asked for (`make containers`).
    pytest.mark.skipif(
        os.environ.get(CONTAINER_TESTS) != "1",
        reason=f"a container test: set {CONTAINER_TESTS}=1 (`make containers`) to build the "
        "images with podman and run deploy/compose.yaml",
    ),
]
LOOP_WITHIN = 120.0
# Gently: each person's requests count against the services' rate limit (600 a minute).
POLL_EVERY = 0.5
T = TypeVar("T")


class Stack:
    """The running project: its compose handle, the front door's URL, its config dir."""

    def __init__(self, compose: Compose, front: str, config: Path) -> None:
        self.compose = compose
        self.front = front
        self.config = config

    def tool(self, *command: str) -> str:
        """An operator's command in the `admin` tools container (admin NATS key, database)."""
        return self.compose.run(
            "--profile", "tools", "run", "--rm", "--no-deps", "-T", "admin", *command
        )

    def add_person(self, name: str, unit: str, role: str) -> str:
        """``minqing user add``; the password it prints once."""
        printed = self.tool("minqing", "user", "add", name, "--unit", unit, "--role", role)
        (password,) = [
            line.rsplit(":", 1)[1].strip() for line in printed.splitlines() if "Password" in line
        ]
        return password

    def poll(self, probe: Callable[[], T], ok: Callable[[T], bool], *services: str) -> T:
        """Call ``probe`` until ``ok`` holds of its answer; fail with the last answer and
        the logs of ``services`` if it never does."""
        deadline = time.monotonic() + LOOP_WITHIN
        while not ok(value := probe()):
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {s}\n{self.compose.logs(s)}" for s in services)
                raise AssertionError(f"not reached; last answer: {value!r}\n{logs}")
            time.sleep(POLL_EVERY)
        return value

    def nats_streams(self) -> list[dict[str, Any]]:
        """The streams as nats-1's monitoring endpoint reports them (inside the network)."""
        shown = containers.podman(
            "exec",
            self.compose.container("nats-1"),
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8222/jsz?streams=true&config=true",
        ).stdout
        accounts = json.loads(shown)["account_details"]
        return [stream for account in accounts for stream in account.get("stream_detail", [])]


class Person:
    """Someone who logs in at the front door and acts with the session's CSRF token."""

    def __init__(self, front: str, name: str, password: str) -> None:
        self.client = httpx.Client(base_url=front, timeout=15)
        answer = self.client.post("/api/v1/session", json={"name": name, "password": password})
        assert answer.status_code in (200, 201), answer.text
        self.csrf = str(answer.json()["csrf_token"])

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(path, json=body, headers={"X-CSRF-Token": self.csrf})

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def json_or_status(self, path: str) -> dict[str, Any] | int:
        """The answer's JSON if it is a 200, else its status."""
        answer = self.get(path)
        return dict(answer.json()) if answer.status_code == 200 else answer.status_code


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """deploy/compose.yaml up, on the images built here; torn down with what it made."""
    reason = containers.unavailable()
    if reason is not None:
        pytest.skip(reason)
    images = containers.build_all()
    with scratch_dir("minqing-compose-") as scratch:
        config = scratch / "config"
        config.mkdir()
        port = free_port()
        compose = Compose(
            COMPOSE_FILE,
            project=f"minqing-test-{os.getpid()}",
            variables={
                **images,
                "MINQING_CONFIG_DIR": str(config),
                "MINQING_POSTGRES_PASSWORD": secrets.token_hex(16),
                "MINQING_FRONT_DOOR_ADDRESS": f"127.0.0.1:{port}",
            },
        )
        try:
            # What an operator runs first: the NATS users' keys and the Caddyfile.
            compose.run("--profile", "setup", "run", "--rm", "-T", "config")
            compose.up()
            for service in compose.started:
                if service != "migrate":
                    compose.wait_healthy(service)
            yield Stack(compose, f"http://127.0.0.1:{port}", config)
        except BaseException:
            print(compose.all_logs())
            raise
        finally:
            left = compose.down()
        assert not left, f"left behind by `down`: {left}"


def test_the_stack_runs_every_service_twice_on_a_three_node_cluster(stack: Stack) -> None:
    services = stack.compose.services()
    for name in SERVICES:
        replicas = [s for s, spec in services.items() if spec.get("command", [])[-1:] == [name]]
        assert replicas == [f"{name}-1", f"{name}-2"], name
        for replica in replicas:  # ready: database, NATS, every consumer attached
            stack.compose.wait_healthy(replica)
    # The front door spreads each service's paths over both of its replicas.
    caddyfile = (stack.config / "Caddyfile").read_text()
    for name in SERVICES:
        port = {"intake": 8081, "assignment": 8082, "followup": 8083, "projection": 8084}[name]
        assert f"reverse_proxy {name}-1:{port} {name}-2:{port} {{" in caddyfile
    # The services created their streams with three copies, one on each node.
    streams = {s["name"]: s for s in stack.nats_streams()}
    assert "MINQING_EVENTS" in streams
    for stream in streams.values():
        assert stream["config"]["num_replicas"] == 3, stream["name"]
        assert len(stream["cluster"]["replicas"]) == 2, stream["cluster"]  # besides the leader


def test_a_matter_reported_at_the_front_door_goes_round_the_loop(stack: Stack) -> None:
    passwords = {
        "li.na": stack.add_person("li.na", "grid_center", "reporter"),
        "wu.jun": stack.add_person("wu.jun", "town_construction", "unit_staff"),
        "zhou.min": stack.add_person("zhou.min", "grid_center", "line_staff"),
    }
    grid, unit, line = (Person(stack.front, name, pw) for name, pw in passwords.items())

    reported = grid.post(
        "/api/v1/reports",
        {
            "title": "Street lights out on Shiguan Road",
            "description": "Six lamps between the school and the market are dark.",
            "category": "street_lights",
            "village": "shihu",
            "source": "grid_center",
            "location": {"address": "Shiguan Road", "lat": 33.51, "lon": 119.21},
        },
    )
    assert reported.status_code == 201, reported.text
    issue = reported.json()["issue_id"]

    # Assignment routed it; followup knows it is assigned, to the unit of the street lights.
    case = stack.poll(
        lambda: unit.json_or_status(f"/api/v1/issues/{issue}/case"),
        lambda c: isinstance(c, dict) and c["status"] == "assigned",
        *("intake-1", "intake-2", "assignment-1", "assignment-2", "followup-1", "followup-2"),
    )
    assert isinstance(case, dict) and case["unit"] == "town_construction"

    resolved = unit.post(
        f"/api/v1/issues/{issue}/resolution",
        {"unit": "town_construction", "summary": "Replaced six lamps"},
    )
    assert resolved.status_code == 201, resolved.text
    looked_back = line.post(
        f"/api/v1/issues/{issue}/lookback", {"outcome": "passed", "notes": "All lamps lit"}
    )
    assert looked_back.status_code == 201, looked_back.text

    # The projection sees it closed, and its audit trail holds each step and who took it.
    closed = stack.poll(
        lambda: line.json_or_status(f"/api/v1/issues/{issue}"),
        lambda m: isinstance(m, dict) and m["status"] == "closed",
        *("followup-1", "followup-2", "projection-1", "projection-2"),
    )
    assert isinstance(closed, dict) and closed["unit"] == "town_construction"
    history = stack.poll(
        lambda: line.json_or_status(f"/api/v1/issues/{issue}/history"),
        lambda h: isinstance(h, dict) and len(h["events"]) >= 4,
        *("projection-1", "projection-2"),
    )
    assert isinstance(history, dict)
    steps = [(e["type"], e["actor"]) for e in history["events"]]
    assert steps == [
        ("minqing.issue.reported", "person:li.na"),
        ("minqing.issue.assigned", "service:assignment"),
        ("minqing.issue.resolved", "person:wu.jun"),
        ("minqing.issue.lookback_passed", "person:zhou.min"),
    ]
    assert "audit trail intact" in stack.tool("minqing", "audit", "verify")
