"""The outbox relay: pipelined, in order, Nats-Msg-Id set, and no failure loses or reorders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import select

from minqing.services.intake.store import plumbing
from minqing.shared.contract.envelope import CONTENT_TYPE
from minqing.shared.messaging.outbox import Message, Outbox, Outgoing, PermanentPublishError, Relay
from minqing.shared.messaging.streams import (
    batch_publisher,
    dlq_stream_config,
    ensure_stream,
    stream_config,
)
from minqing.shared.service.runtime import Runtime, build_runtime
from minqing.shared.service.settings import Settings
from tests.support.events import reported
from tests.support.harness import eventually, stream_messages


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Connected, but with no relay task running: the test drives the relay itself."""
    rt = build_runtime("intake", settings, plumbing)
    await rt.broker.connect()
    rt.js = rt.broker.connection.jetstream()
    await ensure_stream(rt.js, stream_config(settings))
    try:
        yield rt
    finally:
        await rt.broker.stop()
        await rt.engine.dispose()


async def queue(rt: Runtime, count: int) -> list[str]:
    events = [reported() for _ in range(count)]
    async with rt.sessions() as session:
        await Outbox(plumbing.outbox, rt.settings.subject_prefix).add(session, events)
        await session.commit()
    return [e.id for e in events]


async def outbox_rows(rt: Runtime) -> list[object]:
    async with rt.sessions() as session:
        return list((await session.execute(select(plumbing.outbox).order_by("id"))).all())


async def test_rows_are_published_in_order_with_their_event_id_and_marked_sent(
    runtime: Runtime, settings: Settings
) -> None:
    ids = await queue(runtime, 5)

    assert await runtime.relay.relay_once() == 5
    assert await runtime.relay.relay_once() == 0

    messages = await stream_messages(settings)
    assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == ids
    assert {m.subject for m in messages} == {f"{settings.subject_prefix}.issue.reported"}
    rows = await outbox_rows(runtime)
    assert all(row.published_at is not None for row in rows)  # type: ignore[attr-defined]
    assert [row.stream_seq for row in rows] == [m.seq for m in messages]  # type: ignore[attr-defined]


async def test_a_large_outbox_drains_in_pipelined_batches_in_order(
    runtime: Runtime, settings: Settings
) -> None:
    ids = await queue(runtime, 450)
    relay = Relay(
        runtime.engine,
        plumbing.outbox,
        batch_publisher(runtime.js, settings.stream_name),  # type: ignore[arg-type]
        batch_size=200,
        poll_seconds=0.1,
    )

    sent = [await relay.relay_once() for _ in range(4)]

    assert sent == [200, 200, 50, 0]
    messages = await stream_messages(settings)
    assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == ids


async def test_a_crash_between_publishing_and_marking_does_not_duplicate_the_event(
    runtime: Runtime, settings: Settings
) -> None:
    [event_id] = await queue(runtime, 1)
    [row] = await outbox_rows(runtime)
    # The relay published, then died before it marked the row.
    publish = batch_publisher(runtime.js, settings.stream_name)  # type: ignore[arg-type]
    [first_seq] = await publish([Outgoing(1, event_id, row.subject, row.payload.encode())])  # type: ignore[attr-defined]

    assert await runtime.relay.relay_once() == 1  # after restart it sends the row again

    assert len(await stream_messages(settings)) == 1
    [row] = await outbox_rows(runtime)
    assert row.stream_seq == first_seq  # type: ignore[attr-defined]


async def test_nothing_after_a_failed_publish_is_marked_and_it_is_retried_in_order(
    runtime: Runtime, settings: Settings
) -> None:
    ids = await queue(runtime, 5)
    real = batch_publisher(runtime.js, settings.stream_name)  # type: ignore[arg-type]

    async def third_times_out(batch: Sequence[Outgoing]) -> list[int | BaseException]:
        results = await real(batch[:2])
        return [*results, TimeoutError("no ack from the stream"), *await real(batch[3:])]

    flaky = Relay(runtime.engine, plumbing.outbox, third_times_out, batch_size=10, poll_seconds=1)

    assert await flaky.relay_once() == 2
    rows = await outbox_rows(runtime)
    assert [r.published_at is not None for r in rows] == [True, True, False, False, False]  # type: ignore[attr-defined]

    assert await runtime.relay.relay_once() == 3
    messages = await stream_messages(settings)
    # The two published after the failure were sent again: the stream dropped the copies.
    # (They went out before the lost one: consumers cope with that order, see README.)
    published = [m.headers["Nats-Msg-Id"] for m in messages if m.headers]
    assert sorted(published) == sorted(ids) and len(published) == 5


async def test_an_unpublishable_row_is_set_aside_and_the_rows_behind_it_go_out(
    runtime: Runtime, settings: Settings
) -> None:
    ids = await queue(runtime, 3)
    real = batch_publisher(runtime.js, settings.stream_name)  # type: ignore[arg-type]

    async def first_too_large(batch: Sequence[Outgoing]) -> list[int | BaseException]:
        refused = PermanentPublishError("MaxPayloadError: maximum payload exceeded")
        return [refused, *await real(batch[1:])]

    relay = Relay(runtime.engine, plumbing.outbox, first_too_large, batch_size=10, poll_seconds=1)

    assert await relay.relay_once() == 2
    assert await runtime.relay.relay_once() == 0  # the failed row is not retried for ever
    rows = await outbox_rows(runtime)
    assert "maximum payload" in (rows[0].failed_reason or "")  # type: ignore[attr-defined]
    assert [r.failed_reason for r in rows[1:]] == [None, None]  # type: ignore[attr-defined]
    messages = await stream_messages(settings)
    assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == ids[1:]


async def test_a_real_oversized_payload_is_refused_by_the_client_and_set_aside(
    runtime: Runtime, settings: Settings
) -> None:
    publish = batch_publisher(runtime.js, settings.stream_name)  # type: ignore[arg-type]
    huge = b"x" * (2 * 1024 * 1024)

    [result] = await publish([Outgoing(1, "evt-huge", f"{settings.subject_prefix}.x", huge)])

    assert isinstance(result, PermanentPublishError)


async def test_a_broker_outage_leaves_rows_unsent_for_the_next_attempt(
    runtime: Runtime, settings: Settings
) -> None:
    await queue(runtime, 1)

    async def broken(batch: Sequence[Outgoing]) -> list[int | BaseException]:
        return [ConnectionError("nats is down") for _ in batch]

    failing = Relay(runtime.engine, plumbing.outbox, broken, batch_size=10, poll_seconds=0.1)
    assert await failing.relay_once() == 0
    [row] = await outbox_rows(runtime)
    assert row.published_at is None  # type: ignore[attr-defined]

    assert await runtime.relay.relay_once() == 1
    assert len(await stream_messages(settings)) == 1


async def test_only_one_relay_publishes_at_a_time(runtime: Runtime) -> None:
    other = build_runtime("intake", runtime.settings, plumbing)
    try:
        async with runtime.engine.connect() as mine, other.engine.connect() as theirs:
            assert await runtime.relay._lock(mine)
            assert not await other.relay._lock(theirs)  # a replica waits on standby
    finally:
        await other.engine.dispose()


async def test_a_stopping_relay_publishes_what_is_committed_and_hands_over_to_a_standby(
    runtime: Runtime, settings: Settings
) -> None:
    publish = batch_publisher(runtime.js, settings.stream_name)  # type: ignore[arg-type]
    # A polls once a minute and is never woken: only stopping makes it publish the rows below.
    a = Relay(runtime.engine, plumbing.outbox, publish, batch_size=2, poll_seconds=60)
    other = build_runtime("intake", settings, plumbing)
    b = Relay(other.engine, plumbing.outbox, publish, batch_size=2, poll_seconds=0.05)
    first = await queue(runtime, 1)
    running_a = asyncio.create_task(a.run())
    running_b: asyncio.Task[None] | None = None
    try:
        await eventually(lambda: stream_messages(settings), lambda got: len(got) == 1)
        running_b = asyncio.create_task(b.run())  # on standby: A holds the lock
        later = await queue(runtime, 5)
        await asyncio.sleep(0.3)  # B polled several times meanwhile and could not publish
        assert len(await stream_messages(settings)) == 1

        a.stop()
        await asyncio.wait_for(running_a, timeout=10)
        messages = await stream_messages(settings)
        assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == first + later

        last = await queue(runtime, 2)  # A released the lock: the standby publishes these
        await eventually(lambda: stream_messages(settings), lambda got: len(got) == 8)
        b.stop()
        await asyncio.wait_for(running_b, timeout=10)
        messages = await stream_messages(settings)
        assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == first + later + last
    finally:
        for task in (running_a, running_b):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await other.engine.dispose()


async def test_rows_for_other_streams_leave_in_order_with_their_own_bytes_and_headers(
    runtime: Runtime, settings: Settings
) -> None:
    assert runtime.js is not None
    await ensure_stream(runtime.js, dlq_stream_config(settings))
    outbox = Outbox(plumbing.outbox, settings.subject_prefix)
    first, last = reported(), reported()
    raw = b"\xff\x00 not even UTF-8"
    other = Message(
        message_id="dead/1",
        stream=settings.dlq_stream_name,
        subject=f"{settings.dlq_subject_prefix}.ingress.visit",
        body=raw,
        headers={"Minqing-Dead-Reason-Code": "not_utf8", "content-type": "text/plain"},
    )
    async with runtime.sessions() as session:
        await outbox.add(session, [first])
        await outbox.send(session, [other])
        await outbox.send(session, [other])  # queued twice: sent once
        await outbox.add(session, [last])
        await session.commit()

    assert await runtime.relay.relay_once() == 3

    canonical = await stream_messages(settings)
    assert [m.headers["Nats-Msg-Id"] for m in canonical if m.headers] == [first.id, last.id]
    assert all(m.headers and m.headers["content-type"] == CONTENT_TYPE for m in canonical)
    [dead] = await stream_messages(settings, settings.dlq_stream_name)
    assert dead.data == raw
    assert dead.headers is not None
    assert dead.headers["Nats-Msg-Id"] == "dead/1"
    assert dead.headers["Minqing-Dead-Reason-Code"] == "not_utf8"
    assert dead.headers["content-type"] == "text/plain"  # not the CloudEvents type
    seqs = [row.stream_seq for row in await outbox_rows(runtime)]  # type: ignore[attr-defined]
    assert seqs == [canonical[0].seq, dead.seq, canonical[1].seq]
