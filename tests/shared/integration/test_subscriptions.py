"""Durable consumers keep doing their job: re-created while running, and readiness is honest."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import nats
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.assignment.store import plumbing
from minqing.services.intake.app import create_app as intake_app
from minqing.shared.contract.envelope import Envelope
from minqing.shared.embedded import EmbeddedNats
from minqing.shared.messaging.consumer import Delivery, Outcome
from minqing.shared.service.runtime import build_runtime, start, stop
from minqing.shared.service.settings import Settings
from tests.support.events import publish, reported
from tests.support.harness import eventually, serve, stream_messages

REPORT = {
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps are dark.",
    "category": "street_lights",
    "village": "shihu",
    "source": "grid_center",
}


async def assigned_subjects(settings: Settings) -> list[str]:
    return [
        Envelope.model_validate_json(m.data).subject
        for m in await stream_messages(settings)
        if m.subject.endswith("issue.assigned")
    ]


async def test_a_deleted_durable_is_re_created_while_running_from_where_it_was(
    settings: Settings,
) -> None:
    first, second = reported(), reported()
    await publish(settings, first)
    app = assignment_app(settings)
    async with serve(app) as client:
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [first.subject])
        nc = await nats.connect(settings.nats_url)
        try:
            await nc.jetstream().delete_consumer(settings.stream_name, "assignment")
        finally:
            await nc.close()
        await publish(settings, second)
        await eventually(
            lambda: assigned_subjects(settings), lambda s: s == [first.subject, second.subject]
        )
        ready = await eventually(lambda: client.get("/readyz"), lambda r: r.status_code == 200)
    assert ready.json()["consumer assignment"] == "ok"


async def test_a_consumer_stuck_on_a_batch_is_reported_not_ready(settings: Settings) -> None:
    await publish(settings, reported())
    settings = settings.model_copy(update={"consumer_stall_seconds": 0.5})
    released = asyncio.Event()

    async def stuck(session: AsyncSession, deliveries: Sequence[Delivery]) -> Mapping[str, Outcome]:
        await released.wait()
        return {}

    rt = build_runtime("assignment", settings, plumbing)
    rt.subscribe(None, stuck, None)
    await start(rt)
    try:
        _, checks = await _eventually_ready(rt, expect=False)
        assert "stalled" in checks["consumer assignment"]
        released.set()
        await _eventually_ready(rt, expect=True)
    finally:
        released.set()
        await stop(rt)


async def _eventually_ready(rt: object, *, expect: bool) -> tuple[bool, dict[str, str]]:
    return await eventually(rt.ready, lambda r: r[0] is expect)  # type: ignore[attr-defined]


async def test_intake_stays_ready_and_accepts_reports_while_nats_is_away(
    settings: Settings, tmp_path: Path
) -> None:
    server = EmbeddedNats(tmp_path / "nats").start()
    own = settings.model_copy(update={"nats_url": server.url})
    try:
        async with serve(intake_app(own)) as client:
            server.stop()  # NATS goes away
            response = await client.post("/api/v1/reports", json=REPORT)
            assert response.status_code == 201
            ready = await eventually(
                lambda: client.get("/readyz"), lambda r: "outbox" in r.json()["nats"]
            )
            assert ready.status_code == 200
            assert "1 events wait in the outbox" in ready.json()["nats"]
            server = EmbeddedNats(tmp_path / "nats", port=server.port).start()  # it is back
            await eventually(lambda: stream_messages(own), lambda m: len(m) == 1, within=30)
            ok = await eventually(lambda: client.get("/readyz"), lambda r: r.status_code == 200)
            assert ok.json()["nats"] == "ok"
    finally:
        server.stop()


async def test_readiness_says_which_part_is_missing(settings: Settings) -> None:
    app = assignment_app(settings)
    async with serve(app) as client:
        response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["database"] == "ok" and body["nats"] == "ok"
    assert body["consumer assignment"] == "ok"
