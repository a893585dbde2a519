"""Catch-up: one consuming service at a time over the same pre-filled stream, and the raw loop.

A service's consumers are every durable on the stream whose name starts with the service
name. The clock starts when the first of them appears (the process has started and created
it) and stops when all of them have nothing pending and nothing awaiting an ack. Events are
the backlog messages on the subjects those consumers are filtered to.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]
from nats.aio.client import Client
from nats.js.api import ConsumerInfo

from bench import profile
from bench.stack import SETTINGS, Failed, Process, Stack, asyncpg_dsn

POLL_SECONDS = 0.05
STALL_SECONDS = 90.0
PROGRESS_SECONDS = 10.0
RAW_DURABLE = "bench-raw"


@dataclass(frozen=True)
class CatchUp:
    events: int
    seconds: float
    dead_letters: int | None = None

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a trailing ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def filters(info: ConsumerInfo) -> list[str]:
    config = info.config
    found = list(config.filter_subjects or [])
    if config.filter_subject:
        found.append(config.filter_subject)
    return found or [">"]


def remaining(info: ConsumerInfo) -> int:
    return (info.num_pending or 0) + (info.num_ack_pending or 0)


async def watch(nc: Client, prefix: str, processes: list[Process], counts: Counter[str]) -> CatchUp:
    """Time the durables named ``prefix*`` from their appearance until fully caught up."""
    js = nc.jetstream()
    started: float | None = None
    done_at: float | None = None
    last_remaining, last_change = -1, time.monotonic()
    last_print = time.monotonic()
    while True:
        for process in processes:
            process.check_alive()
        infos = [
            info
            for info in await js.consumers_info(SETTINGS.stream_name)
            if info.name.startswith(prefix)
        ]
        now = time.monotonic()
        if infos and started is None:
            started = now
        if infos:
            left = max(remaining(info) for info in infos)
            if left == 0:
                if done_at is not None:  # confirmed by a second look
                    break
                done_at = now
            else:
                done_at = None
            if left != last_remaining:
                last_remaining, last_change = left, now
            elif now - last_change > STALL_SECONDS:
                raise Failed(f"{prefix}: no progress for {STALL_SECONDS:.0f}s, {left:,} left")
            if now - last_print > PROGRESS_SECONDS and started is not None:
                last_print = now
                print(f"  {prefix}: {left:,} left after {now - started:.0f}s", flush=True)
        await asyncio.sleep(POLL_SECONDS)
    assert started is not None and done_at is not None
    patterns = {p for info in infos for p in filters(info)}
    events = sum(n for s, n in counts.items() if any(subject_matches(p, s) for p in patterns))
    return CatchUp(events=events, seconds=done_at - started)


async def dead_letters(database_url: str, service: str) -> int | None:
    """Rows in the service's ``dead_letters`` table (None if it cannot be read)."""
    try:
        conn = await asyncpg.connect(**asyncpg_dsn(database_url))
    except Exception:
        return None
    try:
        return int(await conn.fetchval(f'select count(*) from "{service}".dead_letters'))
    except Exception:
        return None
    finally:
        await conn.close()


async def settle(database_url: str) -> None:
    """CHECKPOINT before a timed phase, so one phase's writes are not flushed on the next's time."""
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))
    try:
        await conn.execute("checkpoint")
    finally:
        await conn.close()


async def service(
    stack: Stack,
    nc: Client,
    name: str,
    database_url: str,
    counts: Counter[str],
    *,
    with_profile: bool,
    views: list[str] | None = None,
) -> CatchUp:
    """Time one service's catch-up; a projection with ``views`` runs one process per read
    model named there (MINQING_PROJECTION_VIEWS), all at once."""
    await settle(database_url)
    if views is None:
        processes = [stack.start_service(name, database_url)]
        prefix = name
    else:
        processes = [
            stack.start_service(
                name, database_url, {"MINQING_PROJECTION_VIEWS": view}, f"{name}-{view}"
            )
            for view in views
        ]
        prefix = f"{name}-{views[0]}" if len(views) == 1 else name
    profilers = [profile.start(stack, p) for p in processes] if with_profile else []
    try:
        result = await watch(nc, prefix, processes, counts)
    finally:
        for profiler in profilers:
            profile.stop(profiler)
        for process in processes:
            stack.stop(process)
    letters = await dead_letters(database_url, name)
    return CatchUp(result.events, result.seconds, letters)


async def forget_durables(nc: Client, prefix: str) -> None:
    """Delete the durables named ``prefix*``, so the next run starts from the first event."""
    js = nc.jetstream()
    for info in await js.consumers_info(SETTINGS.stream_name):
        if info.name.startswith(prefix):
            await js.delete_consumer(SETTINGS.stream_name, info.name)


async def raw(stack: Stack, nc: Client, database_url: str, counts: Counter[str]) -> CatchUp:
    env = {
        "BENCH_NATS_URL": stack.nats_url,
        "BENCH_PG": json.dumps(asyncpg_dsn(database_url)),
        "BENCH_BATCH": str(SETTINGS.consumer_batch_size),
        "BENCH_STREAM": SETTINGS.stream_name,
        "BENCH_DURABLE": RAW_DURABLE,
    }
    await settle(database_url)
    process = stack.start_process("raw-consumer", [sys.executable, "-m", "bench.raw_consumer"], env)
    try:
        return await watch(nc, RAW_DURABLE, [process], counts)
    finally:
        stack.stop(process)
        await nc.jetstream().delete_consumer(SETTINGS.stream_name, RAW_DURABLE)
