"""The raw limit for catch-up: a minimal nats-py + asyncpg loop doing the projection's inserts.

Run as its own process (``python -m bench.raw_consumer``), watched exactly like a service: it
creates a durable pull consumer, fetches batches of ``BENCH_BATCH`` messages, inserts one row
per event into a table shaped like ``projection.events`` in one transaction per batch, and
acks the batch after the commit. Nothing more: no read model, no inbox, no dead letters.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

SCHEMA = """
create schema if not exists bench_raw;
drop table if exists bench_raw.events;
create table bench_raw.events (
    position bigint primary key,
    event_id text not null unique,
    issue_id text not null,
    type text not null,
    time timestamptz not null,
    actor text not null,
    source text not null,
    dataversion integer not null,
    correlationid text not null,
    causationid text,
    data jsonb not null,
    envelope jsonb not null,
    recorded_at timestamptz not null default now()
);
create index events_issue_position on bench_raw.events (issue_id, position);
"""
INSERT = """
insert into bench_raw.events (position, event_id, issue_id, type, time, actor, source,
    dataversion, correlationid, causationid, data, envelope)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
on conflict do nothing
"""


def row(position: int, raw: bytes) -> tuple[object, ...]:
    event = json.loads(raw)
    return (
        position,
        event["id"],
        event["subject"],
        event["type"],
        datetime.fromisoformat(event["time"]),
        event["actor"],
        event["source"],
        event["dataversion"],
        event["correlationid"],
        event.get("causationid"),
        json.dumps(event["data"]),
        raw.decode(),
    )


async def main() -> None:
    batch = int(os.environ["BENCH_BATCH"])
    stream, durable = os.environ["BENCH_STREAM"], os.environ["BENCH_DURABLE"]
    db = await asyncpg.connect(**json.loads(os.environ["BENCH_PG"]))
    await db.execute(SCHEMA)
    nc = await nats.connect(os.environ["BENCH_NATS_URL"])
    js = nc.jetstream()
    config = ConsumerConfig(
        durable_name=durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30,
        max_ack_pending=batch * 10,
    )
    await js.add_consumer(stream, config=config)
    subscription = await js.pull_subscribe_bind(durable=durable, stream=stream)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    while not stopping.is_set():
        try:
            messages = await subscription.fetch(batch=batch, timeout=1.0)
        except TimeoutError:
            continue
        rows = [row(m.metadata.sequence.stream, m.data) for m in messages]
        async with db.transaction():
            await db.executemany(INSERT, rows)
        for message in messages:
            await message.ack()
    await nc.drain()
    await db.close()


if __name__ == "__main__":
    try:  # the same event loop the services run on (uvicorn picks uvloop when installed)
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
