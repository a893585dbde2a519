"""A steady load of matters going round the loop, through every replica of the services,
for the tests of replicas, clusters and restarts.

A reporter thread reports a matter every ``interval`` seconds, each with an Idempotency-Key
it retries (on another replica) until intake takes it: those are the acknowledged reports.
Closer threads take each acknowledged matter round the loop as people would: when followup
has it assigned, its unit resolves it and line staff pass the look-back. A step retried
after a failure that may have reached a replica accepts "wrong state" (409) as done; the
stream and the audit trail, not these answers, show whether anything happened twice.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import text

from minqing.shared.contract.envelope import Envelope
from minqing.shared.domain.ids import new_id
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.settings import Settings
from tests.support.harness import stream_messages
from tests.support.identity import AS, DESK
from tests.support.processes import ServiceProcess, poll, process_env

LOOP = ["issue.reported", "issue.assigned", "issue.resolved", "issue.lookback_passed"]
STEP_WITHIN = 120.0  # seconds one step may take to succeed through outages


class Replicas:
    """One service's replicas, called in turn; a replica that does not answer is passed over."""

    def __init__(self, replicas: Sequence[ServiceProcess]) -> None:
        self.urls = [replica.url for replica in replicas]
        self._turn = itertools.count()

    def call(
        self, client: httpx.Client, method: str, path: str, **options: Any
    ) -> tuple[httpx.Response, bool]:
        """The first answer that is not an outage (5xx, 429, no connection), and whether an
        earlier attempt may have reached a replica (sent, then no answer or a 5xx)."""
        maybe_applied = False
        deadline = time.monotonic() + STEP_WITHIN
        while True:
            url = self.urls[next(self._turn) % len(self.urls)]
            try:
                response = client.request(method, url + path, **options)
                if response.status_code < 500 and response.status_code != 429:
                    return response, maybe_applied
                maybe_applied = maybe_applied or response.status_code >= 500
            except httpx.ConnectError:
                pass  # never reached it
            except httpx.TransportError:
                maybe_applied = True
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no replica answered in {STEP_WITHIN}s")
            time.sleep(0.05)


class Load:
    """Reports at a steady pace and closes what was acknowledged, until ``stop``."""

    def __init__(
        self, services: dict[str, list[ServiceProcess]], interval: float = 0.1, closers: int = 3
    ) -> None:
        self.intake = Replicas(services["intake"])
        self.followup = Replicas(services["followup"])
        self.interval = interval
        self.acknowledged: list[str] = []
        self.closed: list[str] = []
        self.errors: list[str] = []
        self._todo: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._report, daemon=True)] + [
            threading.Thread(target=self._close, daemon=True) for _ in range(closers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, within: float = 180.0) -> None:
        """Stop reporting; the closers finish every acknowledged matter, then end."""
        self._stopping.set()
        self._threads[0].join(within)
        for _ in self._threads[1:]:
            self._todo.put(None)
        for thread in self._threads[1:]:
            thread.join(within)
        assert not any(thread.is_alive() for thread in self._threads), "the load did not end"

    def wait_closed(self, count: int, within: float = 120.0) -> float:
        """Wait until ``count`` matters have been closed; the seconds it took."""
        started = time.monotonic()
        while len(self.closed) < count:
            if self.errors:
                raise AssertionError(self.errors)
            if time.monotonic() - started > within:
                raise AssertionError(f"{len(self.closed)} of {count} closed in {within}s")
            time.sleep(0.05)
        return time.monotonic() - started

    def wait_closed_from(self, first: int, within: float = 120.0) -> float:
        """Wait until a matter acknowledged ``first`` or later (reported after some moment)
        has been closed; the seconds it took: how long the loop was broken."""
        started = time.monotonic()
        while not set(self.acknowledged[first:]) & set(self.closed):
            if self.errors:
                raise AssertionError(self.errors)
            if time.monotonic() - started > within:
                raise AssertionError(f"no matter reported after #{first} closed in {within}s")
            time.sleep(0.05)
        return time.monotonic() - started

    def _report(self) -> None:
        with httpx.Client(timeout=5, headers=DESK) as client:
            for n in itertools.count(1):
                if self._stopping.is_set():
                    return
                body = {
                    "title": f"Street lamp {n} dark on Shiguan Road",
                    "description": "Reported on the night round.",
                    "category": "street_lights",
                    "village": "shihu",
                    "source": "grid_center",
                }
                key = {"Idempotency-Key": new_id()}
                try:
                    answer, _ = self.intake.call(
                        client, "POST", "/api/v1/reports", json=body, headers=key
                    )
                    if answer.status_code not in (200, 201):
                        raise AssertionError(f"report {n}: {answer.status_code} {answer.text}")
                except AssertionError as exc:
                    self.errors.append(str(exc))
                    return
                issue_id = str(answer.json()["issue_id"])
                with self._lock:
                    self.acknowledged.append(issue_id)
                self._todo.put(issue_id)
                time.sleep(self.interval)

    def _close(self) -> None:
        with httpx.Client(timeout=5, headers=DESK) as client:
            while (issue_id := self._todo.get()) is not None:
                try:
                    self._round(client, issue_id)
                except AssertionError as exc:
                    self.errors.append(f"{issue_id}: {exc}")
                    continue
                with self._lock:
                    self.closed.append(issue_id)

    def _round(self, client: httpx.Client, issue_id: str) -> None:
        path = f"/api/v1/issues/{issue_id}"
        deadline = time.monotonic() + STEP_WITHIN
        while True:  # followup learns of the assignment from the stream
            case, _ = self.followup.call(client, "GET", f"{path}/case")
            if case.status_code == 200 and case.json()["status"] == "assigned":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"not assigned in followup: {case.status_code} {case.text}")
            time.sleep(0.1)
        unit = case.json()["unit"]
        resolution = {"unit": unit, "summary": "Lamp replaced", "resolved_by": "li"}
        done, retried = self.followup.call(client, "POST", f"{path}/resolution", json=resolution)
        _expect(done, retried, "resolution")
        lookback = {"outcome": "passed", "visitor": "grid-worker-3", "notes": "Lamp on"}
        done, retried = self.followup.call(
            client, "POST", f"{path}/lookback", json=lookback, headers=AS["line"]
        )
        _expect(done, retried, "look-back")


def _expect(response: httpx.Response, retried: bool, step: str) -> None:
    if response.status_code == 201 or (retried and response.status_code == 409):
        return
    raise AssertionError(f"{step}: {response.status_code} {response.text}")


TRAIL = (
    "select event_id, issue_id, type, stream_epoch, stream_seq, log_seq, hash "
    "from projection.events order by log_seq"
)
LIST = "select * from projection.issues order by issue_id"


def read(settings: Settings, statement: str) -> list[dict[str, Any]]:
    async def once() -> list[dict[str, Any]]:
        engine = make_engine(settings.database_url, settings)
        try:
            async with engine.connect() as conn:
                return [row._asdict() for row in await conn.execute(text(statement))]
        finally:
            await engine.dispose()

    return asyncio.run(once())


def facts_on_stream(settings: Settings) -> collections.Counter[tuple[str, str]]:
    """How many times each (event type, matter) is on the canonical stream."""
    messages = asyncio.run(stream_messages(settings))
    return collections.Counter(
        (m.subject.rsplit(".", 1)[-1], Envelope.model_validate_json(m.data).subject)
        for m in messages
    )


def trails(rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Each matter's event types in the audit trail's order."""
    found: dict[str, list[str]] = collections.defaultdict(list)
    for row in rows:
        found[row["issue_id"]].append(row["type"].removeprefix("minqing."))
    return dict(found)


def scrape_counter(url: str, name: str) -> float:
    """The sum of a counter's samples on one replica's /metrics (0 when it has none)."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def closed_exactly_once(settings: Settings, acknowledged: set[str]) -> list[dict[str, Any]]:
    """Once the projection has recorded them all: every acknowledged matter's audit trail
    is the loop, once, in stream order, and the stream holds each fact once (retries,
    failovers and redeliveries absorbed). The audit trail's rows."""
    rows = poll(
        lambda: read(settings, TRAIL),
        lambda rows: len(rows) >= len(LOOP) * len(acknowledged),
        within=120,
    )
    time.sleep(1.0)  # anything that was going to arrive twice, arrives
    rows = read(settings, TRAIL)
    assert trails(rows) == {issue_id: LOOP for issue_id in acknowledged}
    assert len({r["event_id"] for r in rows}) == len(rows)
    positions = [(r["stream_epoch"], r["stream_seq"]) for r in rows]
    assert positions == sorted(positions), "the chain is sealed in stream order"
    facts = facts_on_stream(settings)
    assert sum(facts.values()) == len(rows) and set(facts.values()) == {1}
    return rows


def minqing(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    """A ``minqing`` command against the test's servers."""
    return subprocess.run(
        [sys.executable, "-m", "minqing", *argv],
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )


def verified_and_rebuilt(settings: Settings) -> None:
    """``minqing audit verify`` passes, and a rebuild from the stream gives the same audit
    trail (byte for byte) and the same list of matters."""
    before = read(settings, TRAIL), read(settings, LIST)
    verified = minqing(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit trail intact" in verified.stdout
    rebuilt = minqing(settings, "projection", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "the same chain" in rebuilt.stdout, rebuilt.stdout
    assert (read(settings, TRAIL), read(settings, LIST)) == before
