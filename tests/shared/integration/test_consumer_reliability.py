"""At-least-once delivery, exactly-once effects: duplicates, poison, retries, versions, outages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.assignment.store import plumbing
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import IssueReported
from minqing.shared.messaging.consumer import ApplyBatch, Delivery, Outcome
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.infra import free_port
from minqing.shared.service.runtime import Runtime, build_runtime, start, stop
from minqing.shared.service.settings import Settings
from tests.support.events import publish, publish_raw, reported
from tests.support.harness import eventually, serve, stream_messages


async def count(rt: Runtime, table_name: str) -> int:
    table = getattr(plumbing, table_name)
    async with rt.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def dead_letters(rt: Runtime) -> list[object]:
    async with rt.sessions() as session:
        return list((await session.execute(select(plumbing.dead_letters))).all())


async def assigned_subjects(settings: Settings) -> list[str]:
    messages = await stream_messages(settings)
    return [
        Envelope.model_validate_json(m.data).subject
        for m in messages
        if m.subject.endswith("issue.assigned")
    ]


def altered(event: Envelope, **changes: object) -> bytes:
    document = json.loads(event.to_json())
    for key, value in changes.items():
        if key == "data":
            document["data"].update(value)
        else:
            document[key] = value
    return json.dumps(document).encode()


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


async def test_an_unreadable_message_is_dead_lettered_with_its_raw_bytes_and_the_rest_go_on(
    settings: Settings,
) -> None:
    good = reported()
    await publish_raw(settings, ("issue.reported", b"{not json", "garbage-1"))
    await publish(settings, good)
    app = assignment_app(settings)
    async with serve(app) as client:
        rt: Runtime = app.state.runtime
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [good.subject])
        [row] = await dead_letters(rt)
        [listed] = (await client.get("/api/v1/dead-letters")).json()
    assert "not a valid event envelope" in row.reason  # type: ignore[attr-defined]
    assert row.raw == b"{not json"  # type: ignore[attr-defined]
    assert row.status == "dead"  # type: ignore[attr-defined]
    assert listed["payload"] == "{not json"
    assert listed["consumer"] == "assignment"


@pytest.mark.parametrize(
    "poison",
    [
        b'{"specversion": "1.0", "id": "a\x00b"}',  # a raw NUL byte: not even JSON
        b"\x00\x00\x00",
    ],
    ids=["raw NUL in JSON", "only NULs"],
)
async def test_a_message_with_a_raw_nul_byte_is_dead_lettered_with_its_bytes_kept(
    settings: Settings, poison: bytes
) -> None:
    good = reported()
    await publish_raw(settings, ("issue.reported", poison, "poison-1"))
    await publish(settings, good)
    app = assignment_app(settings)
    async with serve(app):
        rt: Runtime = app.state.runtime
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [good.subject])
        await eventually(lambda: count(rt, "dead_letters"), lambda n: n == 1)
        [row] = await dead_letters(rt)
    assert row.raw == poison  # type: ignore[attr-defined]


async def test_an_escaped_nul_in_a_valid_event_is_dead_lettered_not_redelivered_for_ever(
    settings: Settings,
) -> None:
    bad, good = reported(), reported()
    poison = altered(bad, data={"title": "lamp\u0000out"})
    await publish_raw(settings, ("issue.reported", poison, bad.id))
    await publish(settings, good)
    app = assignment_app(settings)
    async with serve(app):
        rt: Runtime = app.state.runtime
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [good.subject])
        await eventually(lambda: count(rt, "dead_letters"), lambda n: n == 1)
        [row] = await dead_letters(rt)
    assert "NUL" in row.reason  # type: ignore[attr-defined]
    assert row.raw == poison  # type: ignore[attr-defined]


async def test_a_flood_of_poison_does_not_stop_new_reports_from_being_assigned(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"consumer_batch_size": 20})  # 200 unacked at most
    flood = [("issue.reported", b"\x00poison", f"poison-{n}") for n in range(250)]
    await publish_raw(settings, *flood)
    good = reported()
    await publish(settings, good)
    app = assignment_app(settings)
    async with serve(app):
        rt: Runtime = app.state.runtime
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [good.subject])
        await eventually(lambda: count(rt, "dead_letters"), lambda n: n == 250, within=30)


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


async def test_an_event_with_a_field_this_consumer_does_not_know_is_applied(
    settings: Settings,
) -> None:
    event = reported()
    newer = altered(event, data={"priority": "high", "channel_detail": {"line": 3}})
    await publish_raw(settings, ("issue.reported", newer, event.id))
    app = assignment_app(settings)
    async with serve(app):
        rt: Runtime = app.state.runtime
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [event.subject])
        assert await count(rt, "dead_letters") == 0


async def test_a_newer_data_version_waits_listed_until_a_newer_consumer_applies_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = reported()
    await publish_raw(settings, ("issue.reported", altered(event, dataversion=2), event.id))
    app = assignment_app(settings)
    async with serve(app) as client:
        rt: Runtime = app.state.runtime
        waiting = await eventually(
            lambda: client.get("/api/v1/dead-letters", params={"status": "waiting"}),
            lambda r: len(r.json()) == 1,
        )
        [row] = waiting.json()
        assert row["event_id"] == event.id
        assert "waiting for a newer consumer" in row["reason"]
        # Not applied, not terminated: it keeps coming back.
        await eventually(
            lambda: client.get("/api/v1/dead-letters"),
            lambda r: any(d["deliveries"] >= 3 for d in r.json()),
        )
        assert await assigned_subjects(settings) == []
        assert await count(rt, "inbox") == 0

        monkeypatch.setattr(IssueReported, "VERSION", 2)  # a consumer that reads version 2
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [event.subject])
        await eventually(lambda: count(rt, "dead_letters"), lambda n: n == 0)


@asynccontextmanager
async def consuming(settings: Settings, apply_batch: ApplyBatch) -> AsyncIterator[Runtime]:
    """A consumer with a stand-in apply function on the assignment schema's plumbing."""
    rt = build_runtime("assignment", settings, plumbing)
    rt.subscribe(None, apply_batch, None)
    await start(rt)
    try:
        yield rt
    finally:
        await stop(rt)


async def test_a_failure_of_its_own_is_retried_until_it_succeeds(settings: Settings) -> None:
    event = reported()
    await publish(settings, event)
    attempts: list[int] = []

    async def flaky(session: AsyncSession, deliveries: Sequence[Delivery]) -> Mapping[str, Outcome]:
        attempts.append(deliveries[0].deliveries)
        if len(attempts) < 3:
            raise RuntimeError("cannot apply yet")
        return {}

    async with consuming(settings, flaky) as rt:
        await eventually(lambda: count(rt, "inbox"), lambda n: n == 1)
        assert await count(rt, "dead_letters") == 0
        name = rt.consumers[0].name
        again = rt.metrics.registry.get_sample_value(
            "minqing_events_redelivered_total", {"consumer": name}
        )
    # The batch and then the message alone failed on delivery 1; delivery 2 succeeded.
    assert attempts == [1, 1, 2]
    assert again == 1.0  # the metric counts the one redelivery


async def test_a_message_that_always_fails_is_dead_lettered_and_the_others_are_applied(
    settings: Settings,
) -> None:
    doomed, fine = reported(), reported()
    await publish(settings, doomed, fine)
    settings = settings.model_copy(update={"consumer_max_deliver": 3})

    async def picky(session: AsyncSession, deliveries: Sequence[Delivery]) -> Mapping[str, Outcome]:
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


async def test_a_database_outage_does_not_spend_the_retry_budget(settings: Settings) -> None:
    event = reported()
    await publish(settings, event)
    settings = settings.model_copy(update={"consumer_max_deliver": 2})
    app = assignment_app(settings)
    unreachable = make_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", settings
    )
    async with serve(app) as client:
        rt: Runtime = app.state.runtime
        rt.sessions.configure(bind=unreachable)  # the database goes away
        try:
            for _ in range(3):  # more deliveries than max_deliver, all during the outage
                await asyncio.sleep(2.2)
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert "unavailable" in ready.json()["database"]
        finally:
            rt.sessions.configure(bind=rt.engine)
            await unreachable.dispose()
        await eventually(lambda: assigned_subjects(settings), lambda s: s == [event.subject])
        assert await count(rt, "dead_letters") == 0


async def test_a_backlog_is_applied_in_batches_not_one_transaction_per_event(
    settings: Settings,
) -> None:
    backlog = [reported() for _ in range(300)]
    await publish(settings, *backlog)
    app = assignment_app(settings.model_copy(update={"consumer_batch_size": 100}))
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
