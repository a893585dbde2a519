"""Relay drain: intake's outbox, filled while intake is stopped, drained after it starts.

Beside it, a raw nats-py ``publish_async`` loop of the same messages into a fresh stream.
Both clocks run from the first message stored in the stream; the relay's stops when every
outbox row has ``published_at`` set, the raw loop's when every publish is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg  # type: ignore[import-untyped]
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from bench.events import Message, publish_all
from bench.stack import SETTINGS, Failed, Stack, asyncpg_dsn, fresh_stream

# Intake's outbox as the relay reads it: if its shape changes, change it here only.
OUTBOX_TABLE = "intake.outbox"
OUTBOX_COLUMNS = ("event_id", "subject", "payload")
PUBLISHED_COLUMN = "published_at"
TIMEOUT_SECONDS = 600.0


async def raw(nc: Client, messages: list[Message]) -> float:
    """Seconds for a raw ``publish_async`` loop to store every message in a fresh stream."""
    await fresh_stream(nc)
    started = time.monotonic()
    await publish_all(nc, messages)
    seconds = time.monotonic() - started
    info = await nc.jetstream().stream_info(SETTINGS.stream_name)
    if info.state.messages != len(messages):
        raise Failed(f"raw publish stored {info.state.messages} of {len(messages)} messages")
    return seconds


async def fill_outbox(database_url: str, messages: list[Message]) -> None:
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))
    try:
        await conn.copy_records_to_table(
            OUTBOX_TABLE.split(".")[1],
            schema_name=OUTBOX_TABLE.split(".")[0],
            columns=list(OUTBOX_COLUMNS),
            records=[(m.event_id, m.subject, m.payload.decode()) for m in messages],
        )
    finally:
        await conn.close()


async def first_stored(nc: Client) -> float:
    """The moment the stream first holds a message (polled every 5 ms)."""
    js = nc.jetstream()
    while True:
        with contextlib.suppress(NotFoundError):
            if (await js.stream_info(SETTINGS.stream_name)).state.messages > 0:
                return time.monotonic()
        await asyncio.sleep(0.005)


async def service(stack: Stack, nc: Client, database_url: str, messages: list[Message]) -> float:
    """Seconds for intake's relay to publish and mark the whole outbox."""
    await fresh_stream(nc, create=False)  # intake creates it, as on a first start
    await fill_outbox(database_url, messages)
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))
    process = stack.start_service("intake", database_url)
    first = asyncio.create_task(first_stored(nc))
    try:
        query = f"select count(*) from {OUTBOX_TABLE} where {PUBLISHED_COLUMN} is null"
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while await conn.fetchval(query) > 0:
            process.check_alive()
            if time.monotonic() > deadline:
                raise Failed(f"outbox not drained after {TIMEOUT_SECONDS:.0f}s")
            await asyncio.sleep(0.02)
        finished = time.monotonic()
        started = await first
    finally:
        first.cancel()
        stack.stop(process)
        await conn.close()
    stored = (await nc.jetstream().stream_info(SETTINGS.stream_name)).state.messages
    if stored < len(messages):
        raise Failed(f"relay marked every row but the stream holds {stored} of {len(messages)}")
    return finished - started
