"""The audit chain is sealed in stream order, whatever the delivery did: after a crash that
left messages unacknowledged, and with two replicas of the projection racing, every
matter's chain follows the stream, and a rebuild reproduces the live chain exactly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
from fastapi import FastAPI
from sqlalchemy import select

from minqing.services.projection.app import create_app
from minqing.services.projection.views.history import events
from minqing.services.projection.views.history.verify import verify
from minqing.shared.domain.ids import new_id
from minqing.shared.messaging.subscription import PullConsumer
from minqing.shared.service.settings import Settings
from tests.support.events import assigned, publish, reported
from tests.support.harness import eventually, serve
from tests.support.rebuilding import rebuild_now


async def chain(app: FastAPI) -> list[dict[str, Any]]:
    """The audit table in log order."""
    async with app.state.runtime.sessions() as session:
        rows = await session.execute(select(events).order_by(events.c.log_seq))
        return [r._asdict() for r in rows]


def positions(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(r["stream_epoch"], r["stream_seq"]) for r in rows]


async def sealed(app: FastAPI, count: int) -> list[dict[str, Any]]:
    return await eventually(lambda: chain(app), lambda rows: len(rows) >= count, within=30)


def history_consumer(app: FastAPI) -> PullConsumer:
    return next(c for c in app.state.runtime.consumers if c.name == "projection-history")


@contextlib.asynccontextmanager
async def held_by_a_crashed_reader(settings: Settings, app: FastAPI) -> AsyncIterator[int]:
    """What an earlier projection process left when it was SIGKILLed mid-batch: the first
    messages delivered to the history's durable consumer and never acknowledged (they come
    back only after the ack wait, behind later ones)."""
    consumer = history_consumer(app)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        stream = settings.stream_name
        durable = consumer.subscription.name
        await js.add_consumer(stream, config=consumer.config(None))
        sub = await js.pull_subscribe_bind(durable, stream=stream)
        held = await sub.fetch(batch=3, timeout=5)
        yield len(held)  # dropped unacknowledged, as by a killed process
    finally:
        await nc.close()


async def test_events_a_crashed_reader_held_are_sealed_in_stream_order(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={"consumer_ack_wait_seconds": 1.0, "consumer_batch_size": 4}
    )
    ids = [new_id() for _ in range(5)]
    await publish(settings, *[reported(i) for i in ids], *[assigned(i) for i in ids])
    app = create_app(settings)

    async with held_by_a_crashed_reader(settings, app) as held, serve(app):
        assert held == 3
        rows = await sealed(app, 10)
        await asyncio.sleep(1.5)  # past the ack wait: anything held comes back now

        rows = await chain(app)
        assert positions(rows) == sorted(positions(rows))  # the stream's order, no other
        assert [r["log_seq"] for r in rows] == list(range(1, 11))
        assert (await verify(app.state.runtime.sessions)).ok

        summary, _ = await rebuild_now(settings, ["history"])
        assert summary.chain is not None and summary.chain.startswith("the same chain")
        assert [(r["event_id"], r["hash"]) for r in await chain(app)] == [
            (r["event_id"], r["hash"]) for r in rows
        ]


async def test_two_replicas_seal_one_chain_in_stream_order(settings: Settings) -> None:
    settings = settings.model_copy(update={"consumer_batch_size": 7})
    first, second = create_app(settings), create_app(settings)
    ids = [new_id() for _ in range(60)]

    async with serve(first), serve(second):
        for n in range(0, len(ids), 10):  # bursts, so both replicas hold batches at once
            burst = ids[n : n + 10]
            await publish(settings, *[reported(i) for i in burst], *[assigned(i) for i in burst])
            await asyncio.sleep(0.05)
        rows = await sealed(first, 120)

    assert len(rows) == 120 == len({r["event_id"] for r in rows})
    assert positions(rows) == sorted(positions(rows))
    assert (await verify(first.state.runtime.sessions)).ok
