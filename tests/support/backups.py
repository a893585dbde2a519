"""Backups from a test: the ``minqing`` command run as a process on a test's settings, a
steady load of matters through the services, and what a system holds once it is quiet."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from minqing.shared.backup import tail
from minqing.shared.backup.plan import StreamMessage
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually
from tests.support.identity import AS

REPORT = {
    "description": "Reported while a backup was being taken.",
    "category": "street_lights",
    "village": "shihu",
    "source": "hotline_12345",
    "reporter": {"name": "Zhang San", "phone": "138 0000 1234"},
    "location": {"address": "Shiguan Road", "lat": 33.51, "lon": 119.21},
}


def environment(settings: Settings) -> dict[str, str]:
    """The environment that gives a ``minqing`` process these settings."""
    own = {
        f"MINQING_{name.upper()}": str(getattr(settings, name))
        for name in settings.model_fields_set
    }
    return {**os.environ, **own}


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    seconds: float


async def minqing(settings: Settings, *args: str) -> Ran:
    """Run ``minqing ARGS`` as its own process on ``settings``; what it did."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minqing",
        *args,
        env=environment(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return Ran(
        int(process.returncode or 0),
        out.decode(),
        err.decode(),
        time.monotonic() - started,
    )


@dataclass
class Load:
    """Matters reported, assigned (by the system), resolved and looked back at, steadily,
    by a few workers; every acknowledged step remembered, and whether it was acknowledged
    before the backup began."""

    intake: httpx.AsyncClient
    followup: httpx.AsyncClient
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    backup_began: bool = False
    # issue id (event id) -> whether its report (step) was acknowledged before the backup
    reports: dict[str, bool] = field(default_factory=dict)
    steps: dict[str, bool] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    _fresh: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    async def report(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            body = {**REPORT, "title": f"Lamp {worker}-{n} out on Shiguan Road"}
            created = await self.intake.post("/api/v1/reports", json=body)
            assert created.status_code == 201, created.text
            issue_id = created.json()["issue_id"]
            self.reports[issue_id] = not self.backup_began
            self._fresh.put_nowait(issue_id)

    async def close_matters(self) -> None:
        while not self.stop.is_set():
            try:
                issue_id = await asyncio.wait_for(self._fresh.get(), 0.5)
            except TimeoutError:
                continue
            await self._close(issue_id)

    async def _close(self, issue_id: str) -> None:
        async def status() -> str | None:
            found = await self.followup.get(f"/api/v1/issues/{issue_id}/case")
            return found.json()["status"] if found.status_code == 200 else None

        await eventually(status, lambda s: s == "assigned")
        resolved = await self.followup.post(
            f"/api/v1/issues/{issue_id}/resolution",
            json={"unit": "town_construction", "summary": "Replaced the lamp"},
        )
        assert resolved.status_code == 201, resolved.text
        self.steps[resolved.json()["event_id"]] = not self.backup_began
        passed = await self.followup.post(
            f"/api/v1/issues/{issue_id}/lookback",
            json={"outcome": "passed", "visitor": "grid-worker-7", "notes": "Lit at night"},
            headers=AS["line"],
        )
        assert passed.status_code == 201, passed.text
        self.steps[passed.json()["event_id"]] = not self.backup_began
        self.closed.append(issue_id)


async def quiet(settings: Settings, *, within: float = 30.0) -> int:
    """Wait until nothing moves: every outbox sent, every durable consumer caught up, the
    audit trail at the stream's end, and the stream unchanged for a second; its last
    sequence."""

    async def state() -> tuple[Any, ...]:
        nc = await nats.connect(settings.nats_servers)
        try:
            js = nc.jetstream()
            last = (await js.stream_info(settings.stream_name)).state.last_seq
            lag = {
                info.name: (info.num_pending or 0) + (info.num_ack_pending or 0)
                for info in await js.consumers_info(settings.stream_name)
                if info.config.durable_name  # readers of the audit trail: ``sealed`` says
            }
        finally:
            await nc.close()
        unsent, sealed = await _database_state(settings)
        return last, lag, unsent, sealed

    previous: list[tuple[Any, ...]] = []

    async def probe() -> tuple[Any, ...]:
        previous.append(await state())
        return previous[-1]

    def still(now: tuple[Any, ...]) -> bool:
        last, lag, unsent, sealed = now
        steady = len(previous) > 10 and previous[-11] == now
        return steady and not any(lag.values()) and unsent == 0 and sealed == last

    # (last sequence, consumers' lag, unsent outbox rows, audit trail's last sequence)
    found = await eventually(probe, still, within=within, interval=0.1)
    return int(found[0])


async def _database_state(settings: Settings) -> tuple[int, int]:
    """Unsent outbox rows of every service, and the audit trail's last stream sequence."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            unsent = 0
            for schema in ("intake", "assignment", "followup", "projection"):
                unsent += int(
                    await conn.scalar(
                        text(f"select count(*) from {schema}.outbox where published_at is null")
                    )
                    or 0
                )
            sealed = await conn.scalar(text("select max(stream_seq) from projection.events"))
        return unsent, int(sealed or 0)
    finally:
        await engine.dispose()


async def rows(settings: Settings, query: str) -> list[Mapping[str, Any]]:
    """The rows of a query on the settings' database, as mappings."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(text(query))]
    finally:
        await engine.dispose()


async def messages(settings: Settings, stream: str | None = None) -> list[StreamMessage]:
    """Every message of a stream (the canonical one by default), in order."""
    name = stream or settings.stream_name
    nc = await nats.connect(settings.nats_servers)
    try:
        js = nc.jetstream()
        info = await js.stream_info(name)
        found: list[StreamMessage] = []
        async for batch in tail.read(js, name, info.state.first_seq - 1, info.state.last_seq):
            found += batch
        return found
    finally:
        await nc.close()
