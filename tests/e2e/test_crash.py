"""SIGKILL every service while reports flow, the projection while it catches up: every
event is recorded once, the stream holds each fact once, the audit chain follows the
stream, and a rebuild reproduces the live chain byte for byte (no `--allow-new-chain`)."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from minqing.shared.contract.envelope import Envelope
from minqing.shared.domain.ids import new_id
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.settings import Settings
from tests.support.harness import stream_messages
from tests.support.identity import DESK
from tests.support.processes import ServiceProcess, poll, process_env, running_services

pytestmark = pytest.mark.e2e

# (service, seconds it stays dead while reports flow, killed again as soon as it is ready)
KILLS = (
    ("projection", 1.0, True),  # killed while catching up: it held unacknowledged batches
    ("assignment", 0.3, False),
    ("followup", 0.3, False),
    ("intake", 0.3, False),
    ("projection", 0.5, True),
)
CHAIN = (
    "select event_id, issue_id, stream_epoch, stream_seq, log_seq, prev_hash, hash, "
    "issue_prev_hash, issue_hash from projection.events order by log_seq"
)


class Reporter(threading.Thread):
    """Reports matters one after another until stopped; each one is retried with its
    Idempotency-Key until intake takes it (intake is killed too)."""

    def __init__(self, intake: ServiceProcess) -> None:
        super().__init__(daemon=True)
        self.intake = intake
        self.stopping = threading.Event()
        self.issue_ids: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=5, headers=DESK) as client:
            n = 0
            while not self.stopping.is_set():
                n += 1
                self.issue_ids.append(self._report(client, n))

    def _report(self, client: httpx.Client, n: int) -> str:
        body = {
            "title": f"Street lamp {n} dark on Shiguan Road",
            "description": "Reported on the night round.",
            "category": "street_lights",
            "village": "shihu",
            "source": "grid_center",
        }
        headers = {"Idempotency-Key": new_id()}
        while True:
            try:
                response = client.post(
                    f"{self.intake.url}/api/v1/reports", json=body, headers=headers
                )
                if response.status_code in (200, 201):
                    return str(response.json()["issue_id"])
            except httpx.TransportError:
                pass
            time.sleep(0.1)


def read_chain(settings: Settings) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = make_engine(settings.database_url, settings)
        try:
            async with engine.connect() as conn:
                return [r._asdict() for r in await conn.execute(text(CHAIN))]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_rebuild_after_many_crashes_reproduces_the_live_chain(
    settings: Settings, tmp_path: Path
) -> None:
    # Small batches: a backlog takes the projection many transactions to catch up on. The
    # ack wait outlasts a restart: what a killed process held comes back behind later events.
    settings = settings.model_copy(
        update={"consumer_ack_wait_seconds": 10.0, "consumer_batch_size": 4}
    )
    with running_services(settings, tmp_path) as services:
        reporter = Reporter(services["intake"])
        reporter.start()
        for name, dead_for, again in KILLS:
            time.sleep(0.5)
            services[name].kill()
            time.sleep(dead_for)
            services[name].start()
            if again:
                services[name].kill()
                services[name].start()
        reporter.stopping.set()
        reporter.join(timeout=60)
        issue_ids = set(reporter.issue_ids)

        def recorded() -> list[dict[str, Any]]:
            return read_chain(settings)

        # Every matter reported and assigned, each event once.
        rows = poll(recorded, lambda rows: len(rows) >= 2 * len(issue_ids), within=90)
        time.sleep(1.0)  # let any duplicate that was going to arrive, arrive
        rows = read_chain(settings)

        rebuilt = subprocess.run(
            [sys.executable, "-m", "minqing", "projection", "rebuild"],
            env=process_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        after = read_chain(settings)

    assert len(issue_ids) > 20
    assert {r["issue_id"] for r in rows} == issue_ids
    assert len(rows) == 2 * len(issue_ids) == len({r["event_id"] for r in rows})
    positions = [(r["stream_epoch"], r["stream_seq"]) for r in rows]
    assert positions == sorted(positions), "the chain is sealed in stream order"
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "the same chain" in rebuilt.stdout, rebuilt.stdout
    assert after == rows  # the rebuilt trail: the same entries, numbers and hashes
    # The stream itself holds each fact once: retries and redelivery were absorbed.
    messages = asyncio.run(stream_messages(settings))
    facts = collections.Counter(
        (m.subject.rsplit(".", 1)[-1], Envelope.model_validate_json(m.data).subject)
        for m in messages
    )
    assert len(messages) == len(rows) and set(facts.values()) == {1}
