"""At-least-once delivery, exactly-once effects: duplicates, poison, retries, batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assignment.app import create_app as assignment_app
from services.assignment.store import plumbing
from shared.consumer import ApplyBatch, Delivery
from shared.envelope import Envelope
from shared.runtime import Runtime, build_runtime, start, stop
from shared.settings import Settings
from tests.support.events import publish, publish_raw, reported
from tests.support.harness import eventually, serve, stream_messages


async def count(rt: Runtime, table_name: str) -> int:
    table = getattr(plumbing, table_name)
    async with rt.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def assigned_subjects(settings: Settings) -> list[str]:
    messages = await stream_messages(settings)
    return [
        Envelope.model_validate_json(m.data).subject
        for m in messages
        if m.subject.endswith("issue.assigned")
    ]


async def test_a_redelivered_event_is_applied_once(settings: Settings) -> None:
    event = reported()
    # Two copies under different message ids get past the stream's de-duplication.
    await publish_raw(
        settings,
        (event.short_type, event.to_json(), "copy-1"),
        (event.short_type, event.to_json(), "copy-2"),
    )
    app = assignment_app(settings)
    async with serve(app):
        rt: Runtime = app.state.runtime
        await eventually(lambda: count(rt, "inbox"), lambda n: n == 1)
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [event.subject])
        # A later batch does not bring a second assignment either.
        await publish_raw(settings, (event.short_type, event.to_json(), "copy-3"))
        await eventually(lambda: stream_messages(settings), lambda m: len(m) == 4)
        later = reported()
        await publish(settings, later)
        await eventually(lambda: assigned_subjects(settings), lambda s: len(s) == 2)
        assert await assigned_subjects(settings) == [event.subject, later.subject]


async def test_an_unreadable_message_is_dead_lettered_and_the_rest_go_on(
    settings: Settings,
) -> None:
    good = reported()
    await publish_raw(settings, ("issue.reported", b"{not json", "garbage-1"))
    await publish(settings, good)
    app = assignment_app(settings)
    async with serve(app):
        rt: Runtime = app.state.runtime
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [good.subject])
        async with rt.sessions() as session:
            rows = (await session.execute(select(plumbing.dead_letters))).all()
    assert len(rows) == 1
    assert "not a valid event envelope" in rows[0].reason
    assert rows[0].payload == "{not json"


async def test_an_event_with_an_unknown_code_is_rejected_with_the_valid_codes(
    settings: Settings,
) -> None:
    bad = reported(category="potholes")
    await publish(settings, bad)
    app = assignment_app(settings)
    async with serve(app) as client:
        rt: Runtime = app.state.runtime
        await eventually(lambda: count(rt, "dead_letters"), lambda n: n == 1)
        [row] = (await client.get("/api/v1/dead-letters")).json()
        assert row["event_id"] == bad.id
        assert row["subject"] == f"{settings.subject_prefix}.issue.reported"
        assert "unknown category 'potholes'" in row["reason"]
        assert "street_lights" in row["reason"]
        assert await count(rt, "inbox") == 1  # handled: never retried
    assert await assigned_subjects(settings) == []


@asynccontextmanager
async def consuming(settings: Settings, apply_batch: ApplyBatch) -> AsyncIterator[Runtime]:
    """A consumer with a stand-in apply function on the assignment schema's plumbing."""
    rt = build_runtime("assignment", settings, plumbing)
    rt.consume(apply_batch)
    await start(rt)
    try:
        yield rt
    finally:
        await stop(rt)


async def test_a_transient_failure_is_retried_until_it_succeeds(settings: Settings) -> None:
    event = reported()
    await publish(settings, event)
    attempts: list[int] = []

    async def flaky(session: AsyncSession, deliveries: Sequence[Delivery]) -> Mapping[str, str]:
        attempts.append(deliveries[0].deliveries)
        if len(attempts) < 3:
            raise ConnectionError("database went away")
        return {}

    async with consuming(settings, flaky) as rt:
        await eventually(lambda: count(rt, "inbox"), lambda n: n == 1)
        assert await count(rt, "dead_letters") == 0
    # The batch and then the message alone failed on delivery 1; delivery 2 succeeded.
    assert attempts == [1, 1, 2]


async def test_a_message_that_always_fails_is_dead_lettered_and_the_others_are_applied(
    settings: Settings,
) -> None:
    doomed, fine = reported(), reported()
    await publish(settings, doomed, fine)
    settings = settings.model_copy(update={"consumer_max_deliver": 3})

    async def picky(session: AsyncSession, deliveries: Sequence[Delivery]) -> Mapping[str, str]:
        if any(d.envelope.id == doomed.id for d in deliveries):
            raise RuntimeError("cannot apply this one")
        return {}

    async with consuming(settings, picky) as rt:
        await eventually(lambda: count(rt, "dead_letters"), lambda n: n == 1)
        async with rt.sessions() as session:
            dead = (await session.execute(select(plumbing.dead_letters))).one()
            processed = set(await session.scalars(select(plumbing.inbox.c.event_id)))
    assert dead.deliveries == 3
    assert "failed 3 times" in dead.reason and "cannot apply this one" in dead.reason
    assert processed == {fine.id}


async def test_a_backlog_is_applied_in_batches_not_one_transaction_per_event(
    settings: Settings,
) -> None:
    backlog = [reported() for _ in range(300)]
    await publish(settings, *backlog)
    app = assignment_app(settings)
    async with serve(app):
        rt: Runtime = app.state.runtime
        await eventually(lambda: count(rt, "inbox"), lambda n: n == 300, within=60)
        async with rt.sessions() as session:
            # now() is the transaction's start time: one value per transaction.
            transactions = await session.scalar(
                select(func.count(func.distinct(plumbing.inbox.c.processed_at)))
            )
        await eventually(lambda: assigned_subjects(settings), lambda s: len(s) == 300, within=60)
    assert transactions is not None and transactions <= 30
