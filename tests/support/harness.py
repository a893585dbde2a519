"""Test helpers: fresh databases from a migrated template, isolated streams, app clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx
import nats
import uvicorn
from fastapi import FastAPI
from nats.js.api import RawStreamMsg, StreamInfo
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from minqing.shared.domain.ids import new_id
from minqing.shared.persistence.migrations import upgrade_all
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.support.identity import DESK, enrol

T = TypeVar("T")


def with_database(url: str, database: str) -> str:
    """The same server URL, pointing at another database."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(with_database(url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def create_template(server_url: str) -> str:
    """A database with every service's migrations applied, to copy per test."""
    name = f"mq_template_{new_id().lower()}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    await asyncio.to_thread(upgrade_all, with_database(server_url, name))
    return name


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, template: str) -> AsyncIterator[str]:
    """A new database copied from the template; dropped afterwards."""
    name = f"mq_test_{new_id().lower()}"
    await _admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield with_database(server_url, name)
    finally:
        await drop_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop a database of the tests, closing whatever still holds it."""
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def isolated_settings(nats_url: str, database_url: str, **overrides: object) -> Settings:
    """Settings with a stream and subjects of their own, so tests never share messages."""
    tag = new_id().lower()
    values: dict[str, object] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "stream_name": f"T_{tag.upper()}",
        "subject_prefix": f"t{tag}.events",
        "ingress_stream_name": f"T_{tag.upper()}_INGRESS",
        "ingress_subject_prefix": f"t{tag}.ingress",
        "outcomes_stream_name": f"T_{tag.upper()}_OUTCOMES",
        "outcomes_subject_prefix": f"t{tag}.outcomes",
        "dlq_stream_name": f"T_{tag.upper()}_DLQ",
        "dlq_subject_prefix": f"t{tag}.dlq",
        "relay_poll_seconds": 0.1,
        "consumer_retry_delay_seconds": 0.05,
        "consumer_check_seconds": 0.3,
        "startup_timeout_seconds": 15.0,
        # Tests about delivery send many alike reports that must stay separate matters;
        # tests about duplicates set the threshold they mean.
        "duplicate_threshold": 101.0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (broker, relay, consumers) and give an HTTP client for it,
    acting as the test desk (``tests.support.identity``) unless a request says otherwise."""
    async with app.router.lifespan_context(app):
        await enrol(app.state.runtime.sessions)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=DESK
        ) as client:
            yield client


@contextlib.asynccontextmanager
async def serve_over_http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app under uvicorn on a free port and give a client that talks to it over TCP:
    requests sent together race as they do in production, and a fault is a real 500."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        base_url = f"http://127.0.0.1:{port}"
        await enrol(app.state.runtime.sessions)
        async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=DESK) as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def eventually(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    *,
    within: float = 15.0,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` until ``ok`` holds for its result; fail with the last value if never."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if ok(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(interval)


async def stream_messages(settings: Settings, stream: str | None = None) -> list[RawStreamMsg]:
    """Every message in the settings' stream (or ``stream``), read directly (no consumer
    state)."""
    name = stream or settings.stream_name
    nc = await nats.connect(settings.nats_servers)
    try:
        js = nc.jetstream()
        info: StreamInfo = await js.stream_info(name)
        if not info.state.messages:
            return []
        return [
            await js.get_msg(name, seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()
