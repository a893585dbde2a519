"""The tamper-evident audit trail on PostgreSQL: the projection seals what it records, and
verification (HTTP and `minqing audit verify`) names the entry a hand in the database
changed, deleted or rewrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, update

from minqing.services.projection.app import create_app
from minqing.services.projection.views.history import events
from minqing.services.projection.views.history import seal as audit
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.support.clock import SetClock
from tests.support.events import assigned, publish, reported
from tests.support.harness import eventually, serve

CLOCK = SetClock(datetime(2026, 11, 30, 17, 30, tzinfo=UTC))


@pytest.fixture
async def app(settings: Settings) -> FastAPI:
    return create_app(settings, clock=CLOCK)


@pytest.fixture
async def client(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    first, second = new_id(), new_id()
    async with serve(app) as client:
        await publish(settings, reported(first), reported(second), assigned(first))
        await eventually(
            lambda: client.get("/api/v1/audit/checkpoint"), lambda r: r.json()["count"] == 3
        )
        yield client


async def verification(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/audit/verify", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def stored(app: FastAPI) -> list[dict[str, Any]]:
    async with app.state.runtime.sessions() as session:
        return [
            r._asdict() for r in await session.execute(select(events).order_by(events.c.log_seq))
        ]


async def test_what_was_recorded_verifies_and_the_trail_shows_each_hash(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    found = await verification(client)
    head = (await client.get("/api/v1/audit/checkpoint")).json()

    assert (found["ok"], found["entries"], found["problem"]) == (True, 3, None)
    assert (head["log_seq"], head["hash"]) == (3, found["head_hash"])
    assert head["time"] == "2026-11-30T17:30:00Z"  # the service's clock, not the wall's
    rows = await stored(app)
    history = (await client.get(f"/api/v1/issues/{rows[0]['issue_id']}/history")).json()
    assert [e["hash"] for e in history["events"]] == [rows[0]["hash"], rows[2]["hash"]]


async def test_a_row_changed_by_hand_is_named(client: httpx.AsyncClient, app: FastAPI) -> None:
    rows = await stored(app)
    async with app.state.runtime.sessions() as session:
        await session.execute(
            update(events)
            .where(events.c.log_seq == 2)
            .values(data={**rows[1]["data"], "title": "nothing to see here"})
        )
        await session.commit()

    found = await verification(client)

    assert found["ok"] is False
    assert found["problem"]["kind"] == "changed"
    assert (found["problem"]["log_seq"], found["problem"]["event_id"]) == (2, rows[1]["event_id"])


def changed(column: str, value: Any) -> Any:
    """Another value of the same kind for ``column``."""
    if isinstance(value, bool) or column == "dataversion":
        return value + 1
    if isinstance(value, int):
        return value + 100
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, dict):
        return {**value, "title": "nothing to see here"}
    if column.endswith("hash"):
        return "f" * 64
    return f"{value or ''}-forged"


@pytest.mark.parametrize("column", [c.name for c in events.c])
async def test_each_column_changed_by_hand_is_named(
    client: httpx.AsyncClient, app: FastAPI, column: str
) -> None:
    # Every column of the audit table is covered by the seal: there is none a reader or a
    # rebuild could take that verification does not check.
    rows = await stored(app)
    value = changed(column, rows[1][column])
    async with app.state.runtime.sessions() as session:
        await session.execute(update(events).where(events.c.log_seq == 2).values({column: value}))
        await session.commit()

    found = await verification(client)

    assert found["ok"] is False, column
    # The entry itself, or (its place in the log changed) the entry that follows the gap.
    named = 3 if column == "log_seq" else 2
    assert found["problem"]["log_seq"] == named, found["problem"]


async def test_a_deleted_row_is_named(client: httpx.AsyncClient, app: FastAPI) -> None:
    async with app.state.runtime.sessions() as session:
        await session.execute(delete(events).where(events.c.log_seq == 1))
        await session.commit()

    found = await verification(client)

    assert (found["problem"]["kind"], found["problem"]["log_seq"]) == ("deleted", 2)


async def test_a_rewrite_of_the_whole_chain_is_caught_by_an_earlier_checkpoint(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    kept = (await client.get("/api/v1/audit/checkpoint")).json()
    rows = await stored(app)
    rows[0]["actor"] = "someone else"
    fields = (*audit.CANONICAL_FIELDS,)
    entries = [{k: r[k] for k in fields} for r in rows]
    resealed = audit.seal(entries, (0, audit.GENESIS), {})
    async with app.state.runtime.sessions() as session:
        for row, seal in zip(rows, resealed, strict=True):
            values = {**asdict(seal), "actor": row["actor"]}
            await session.execute(
                update(events).where(events.c.event_id == row["event_id"]).values(**values)
            )
        await session.commit()

    assert (await verification(client))["ok"] is True  # consistent in itself
    held = await verification(client, log_seq=kept["log_seq"], hash=kept["hash"])
    assert held["ok"] is False and held["problem"]["kind"] == "checkpoint"


async def test_the_command_verifies_against_a_checkpoint_file(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, "MINQING_DATABASE_URL": settings.database_url}

    def minqing(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "minqing", "audit", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    exported = minqing("checkpoint")
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "checkpoint.json").write_text(exported.stdout)
    assert json.loads(exported.stdout)["log_seq"] == 3
    intact = minqing("verify", "--checkpoint", str(tmp_path / "checkpoint.json"))
    assert intact.returncode == 0, intact.stderr
    assert "audit trail intact: 3 entries" in intact.stdout
    assert "Traceback" not in intact.stderr + exported.stderr  # a clean exit, engine closed

    async with app.state.runtime.sessions() as session:
        await session.execute(update(events).where(events.c.log_seq == 3).values(actor="x"))
        await session.commit()
    broken = minqing("verify", "--checkpoint", str(tmp_path / "checkpoint.json"))

    assert broken.returncode == 1
    assert "entry 3 changed" in broken.stderr


async def test_events_recorded_before_the_chain_are_sealed_by_the_migration(
    server_db_url: str,
) -> None:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from minqing.services.projection.views.history.verify import verify
    from minqing.shared.persistence.db import make_engine, make_sessions
    from minqing.shared.persistence.migrations import upgrade
    from minqing.shared.service.infra import ensure_database
    from tests.support.harness import drop_database, with_database

    url = with_database(server_db_url, f"mq_chain_{new_id().lower()}")
    await asyncio.to_thread(ensure_database, url)
    engine = make_engine(url, Settings(database_url=url))
    try:
        await asyncio.to_thread(upgrade, url, "projection", "projection_0004")
        async with engine.begin() as conn:
            for n, issue in enumerate(["A", "B", "A"], start=1):
                await conn.execute(
                    text(
                        "insert into projection.events (event_id, stream_epoch, stream_seq, "
                        "issue_id, type, time, actor, source, dataversion, correlationid, data, "
                        "envelope) values (:id, 1, :n, :issue, 'minqing.issue.reported', now(), "
                        "'visit', '/minqing/intake', 1, :id, cast(:data as jsonb), '{}')"
                    ),
                    {"id": f"e{n}", "n": 10 - n, "issue": issue, "data": json.dumps({"n": n})},
                )
        await asyncio.to_thread(upgrade, url, "projection", "head")

        found = await verify(make_sessions(engine))
        async with engine.connect() as conn:
            order = (
                (
                    await conn.execute(
                        text("select event_id from projection.events order by log_seq")
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
        await drop_database(server_db_url, make_url(url).database or "")

    assert (found.ok, found.entries) == (True, 3)
    assert order == ["e3", "e2", "e1"]  # sealed in stream order


async def test_an_event_recorded_twice_is_sealed_once_and_leaves_no_gap(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    from minqing.services.projection.views import history
    from minqing.shared.messaging.consumer import Delivery

    old = await stored(app)
    issue = new_id()
    again = reported(issue)
    fresh = assigned(issue)

    def delivery(envelope: Any, position: int) -> Delivery:
        return Delivery(envelope, "s", 1, position, 1, envelope.to_json())

    async with app.state.runtime.sessions() as session:
        await history.apply_batch(session, [delivery(again, 100)])
        await history.apply_batch(session, [delivery(again, 100), delivery(fresh, 101)])
        await session.commit()

    found = await verification(client)
    assert (found["ok"], found["entries"]) == (True, len(old) + 2)
