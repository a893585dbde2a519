"""The outbox relay: publishes with Nats-Msg-Id, in order, and a crash never duplicates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from services.intake.store import plumbing
from shared.messaging import ensure_stream, publisher
from shared.outbox import Relay, add_events
from shared.runtime import Runtime, build_runtime
from shared.settings import Settings
from tests.support.events import reported
from tests.support.harness import stream_messages


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Connected, but with no relay task running: the test drives the relay itself."""
    rt = build_runtime("intake", settings, plumbing)
    await rt.broker.connect()
    await ensure_stream(rt.broker.connection.jetstream(), settings)
    try:
        yield rt
    finally:
        await rt.broker.stop()
        await rt.engine.dispose()


async def test_rows_are_published_in_order_with_their_event_id_and_marked_sent(
    runtime: Runtime, settings: Settings
) -> None:
    events = [reported() for _ in range(5)]
    async with runtime.sessions() as session, session.begin():
        await add_events(session, plumbing.outbox, settings.subject_prefix, events)

    assert await runtime.relay.relay_once() == 5
    assert await runtime.relay.relay_once() == 0

    messages = await stream_messages(settings)
    assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == [e.id for e in events]
    assert {m.subject for m in messages} == {f"{settings.subject_prefix}.issue.reported"}
    async with runtime.sessions() as session:
        rows = (await session.execute(select(plumbing.outbox).order_by("id"))).all()
    assert all(row.published_at is not None for row in rows)
    assert [row.stream_seq for row in rows] == [m.seq for m in messages]


async def test_a_crash_between_publishing_and_marking_does_not_duplicate_the_event(
    runtime: Runtime, settings: Settings
) -> None:
    event = reported()
    async with runtime.sessions() as session, session.begin():
        await add_events(session, plumbing.outbox, settings.subject_prefix, [event])
    # The relay published, then died before its transaction committed.
    publish = publisher(runtime.broker, settings)
    first_seq = await publish(
        f"{settings.subject_prefix}.issue.reported", event.to_json(), event.id
    )

    assert await runtime.relay.relay_once() == 1  # after restart it sends the row again

    messages = await stream_messages(settings)
    assert len(messages) == 1
    async with runtime.sessions() as session:
        row = (await session.execute(select(plumbing.outbox))).one()
    assert row.stream_seq == first_seq


async def test_a_broker_outage_leaves_rows_unsent_for_the_next_attempt(
    runtime: Runtime, settings: Settings
) -> None:
    event = reported()
    async with runtime.sessions() as session, session.begin():
        await add_events(session, plumbing.outbox, settings.subject_prefix, [event])

    async def broken(subject: str, payload: bytes, message_id: str) -> int:
        raise ConnectionError("nats is down")

    failing = Relay(runtime.sessions, plumbing.outbox, broken, batch_size=10, poll_seconds=0.1)
    with pytest.raises(ConnectionError):
        await failing.relay_once()
    async with runtime.sessions() as session:
        row = (await session.execute(select(plumbing.outbox))).one()
    assert row.published_at is None

    assert await runtime.relay.relay_once() == 1
    assert len(await stream_messages(settings)) == 1
