"""Crash consumers with SIGKILL while events flow; the audit trail still has each event once."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import httpx
import pytest

from shared.envelope import Envelope
from shared.settings import Settings
from tests.support.harness import stream_messages
from tests.support.processes import running_services

pytestmark = pytest.mark.e2e

MATTERS = 60


def report(intake_url: str, n: int) -> str:
    body = {
        "title": f"Street lamp {n} dark",
        "description": "Reported by a grid worker on the night round.",
        "category": "street_lights",
        "village": "shihu",
        "source": "grid_center",
    }
    response = httpx.post(f"{intake_url}/api/v1/reports", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["issue_id"])


def complete_histories(projection_url: str, issue_ids: list[str]) -> dict[str, list[str]]:
    histories = {}
    for issue_id in issue_ids:
        response = httpx.get(f"{projection_url}/api/v1/issues/{issue_id}/history", timeout=10)
        events = response.json()["events"] if response.status_code == 200 else []
        histories[issue_id] = [e["id"] for e in events]
    return histories


def test_killed_consumers_lose_nothing_and_apply_nothing_twice(
    settings: Settings, tmp_path: Path
) -> None:
    # Messages a killed consumer held come back after the ack wait: keep it short here.
    settings = settings.model_copy(update={"consumer_ack_wait_seconds": 3.0})
    with running_services(settings, tmp_path) as services:
        intake = services["intake"].url
        issue_ids = []
        for n in range(MATTERS):
            issue_ids.append(report(intake, n))
            if n == 15:
                services["assignment"].kill()
            if n == 25:
                services["projection"].kill()
            if n == 35:
                services["assignment"].start()
            if n == 45:
                services["projection"].start()
                services["followup"].kill()
                services["followup"].start()

        deadline = time.monotonic() + 60
        while True:
            histories = complete_histories(services["projection"].url, issue_ids)
            if all(len(ids) >= 2 for ids in histories.values()):
                break
            assert time.monotonic() < deadline, {k: v for k, v in histories.items() if len(v) < 2}
            time.sleep(0.2)
        time.sleep(1.0)  # let any duplicate that was going to arrive, arrive
        histories = complete_histories(services["projection"].url, issue_ids)

    # Exactly one reported and one assigned event per matter in the audit trail.
    assert all(len(ids) == 2 == len(set(ids)) for ids in histories.values()), histories
    # The stream itself holds each fact once: redelivery after the crash was absorbed.
    messages = asyncio.run(stream_messages(settings))
    per_subject = collections.Counter(
        (m.subject.rsplit(".", 2)[-1], Envelope.model_validate_json(m.data).subject)
        for m in messages
    )
    assert len(messages) == 2 * MATTERS
    assert set(per_subject.values()) == {1}
