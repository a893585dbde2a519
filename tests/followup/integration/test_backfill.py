"""Cases stored before followup kept what a look-back shows (migration followup_0007 added
title, village, address and summary as empty columns, and the events that carry them had
long been read) are filled from the event stream, on real PostgreSQL and NATS: the
look-back list shows them without a title or village first, and a followup starting then
warns; ``backfill_cases`` fills them,
only where empty; ``minqing followup backfill-cases`` finds nothing more to do, and says
so."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy import update

from minqing.services.followup.app import create_app
from minqing.services.followup.backfill import backfill_cases
from minqing.services.followup.store import cases
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import IssueReported
from minqing.shared.domain.ids import new_id
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.settings import Settings
from tests.support.clock import SetClock
from tests.support.events import FRIDAY_MORNING, assigned, envelope, publish
from tests.support.harness import eventually, serve
from tests.support.identity import AS


@pytest.fixture
async def followup(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings, clock=SetClock(FRIDAY_MORNING))) as client:
        yield client


def reported(title: str) -> Envelope:
    event = IssueReported(
        title=title,
        description="Seen on a visit",
        category="roads",
        village="xuma",
        source="village_branch",
        address=f"{title} lane 3",
    )
    return envelope(event, new_id(), actor="system:village_branch", service="intake")


async def tasks(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    mine = await client.get("/api/v1/lookbacks/mine", headers=AS["line"])
    assert mine.status_code == 200, mine.text
    return {t["issue_id"]: t for t in mine.json()["tasks"]}


async def test_cases_stored_before_0007_are_filled_from_the_stream_once(
    followup: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    road, gate = reported("Road"), reported("Gate")
    await publish(settings, road, assigned(road.subject), gate, assigned(gate.subject))

    async def status(issue_id: str) -> str | None:
        found = await followup.get(f"/api/v1/issues/{issue_id}/case")
        return found.json()["status"] if found.status_code == 200 else None

    for issue_id in (road.subject, gate.subject):
        await eventually(lambda i=issue_id: status(i), lambda s: s == "assigned")
    done = await followup.post(
        f"/api/v1/issues/{road.subject}/resolution",
        json={"unit": "town_construction", "summary": "Road: potholes filled"},
    )
    assert done.status_code == 201, done.text

    # As a case stored before followup_0007 is: none of what a visitor needs.
    engine = make_engine(settings.database_url, settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(cases).values(title=None, village=None, address=None, summary=None)
            )
        before = (await tasks(followup))[road.subject]
        assert (before["title"], before["village"], before["summary"]) == (None, None, None)
        # A followup started now says so, and what to run.
        with caplog.at_level(logging.WARNING, logger="minqing.followup"):
            async with serve(create_app(settings, clock=SetClock(FRIDAY_MORNING))):

                async def logged() -> str:
                    return caplog.text

                said = await eventually(logged, lambda text: "cases lack" in text)
        assert "2 cases lack the title, village or resolution summary" in said
        assert "minqing followup backfill-cases" in said

        nc = await nats.connect(settings.nats_url)
        try:
            filled = await backfill_cases(engine, nc.jetstream(), settings, batch=1)
        finally:
            await nc.close()
        assert (filled.missing, filled.filled, filled.left) == (2, 2, [])
        assert filled.read == 3  # two reports and one resolution: nothing else is read

        after = (await tasks(followup))[road.subject]
        assert (after["title"], after["village"], after["address"]) == (
            "Road",
            "xuma",
            "Road lane 3",
        )
        assert after["summary"] == "Road: potholes filled"
        assert after["village_name"] and after["village_name"] != "xuma"

        # Only empty fields are written: a value the service keeps is never replaced.
        async with engine.begin() as conn:
            await conn.execute(
                update(cases).where(cases.c.issue_id == road.subject).values(title=None)
            )
            await conn.execute(
                update(cases)
                .where(cases.c.issue_id == road.subject)
                .values(summary="Kept by the service")
            )
    finally:
        await engine.dispose()

    # The operator's command, as run after an upgrade (here: the test's stream and database).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINQING_")} | {
        "MINQING_NATS_URL": settings.nats_url,
        "MINQING_DATABASE_URL": settings.database_url,
        "MINQING_STREAM_NAME": settings.stream_name,
        "MINQING_SUBJECT_PREFIX": settings.subject_prefix,
    }
    ran = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "minqing.services.cli", "followup", "backfill-cases"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "1 cases lacked a title, village or summary; 1 filled" in ran.stdout
    again = (await tasks(followup))[road.subject]
    assert (again["title"], again["summary"]) == ("Road", "Kept by the service")
