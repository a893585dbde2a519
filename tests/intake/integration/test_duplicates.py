"""Duplicates over HTTP on PostgreSQL: an alike report joins the open matter, a wrong match
is split back, a closed matter takes no more reports, and alike reports racing each other
still make one matter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from minqing.services.intake.app import create_app
from minqing.services.intake.store import matters
from minqing.shared.contract.events import IssueLookbackPassed
from minqing.shared.service.settings import Settings
from tests.support.events import envelope, publish
from tests.support.harness import eventually, serve, stream_messages

LAMPS = {
    "title": "石官路路灯不亮",
    "description": "石官路东段六盏路灯晚上都不亮",
    "category": "street_lights",
    "village": "shihu",
    "source": "hotline_12345",
    "reporter": {"name": "张三", "phone": "13812345678"},
}
AGAIN = {
    **LAMPS,
    "title": "石官路的路灯不亮了",
    "description": "走访时群众反映石官路路灯坏了",
    "village": "石湖镇",  # an alias of shihu
    "source": "visit",
    "reporter": {"name": "李四", "phone": "13987654321"},
}


@pytest.fixture
def dedupe_settings(settings: Settings) -> Settings:
    """The test's settings (their actors checked at its end), alike reports merged."""
    return settings.model_copy(update={"duplicate_threshold": 80.0})


@pytest.fixture
async def app(dedupe_settings: Settings) -> FastAPI:
    return create_app(dedupe_settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app) as client:
        yield client


async def post(client: httpx.AsyncClient, body: dict[str, object]) -> dict[str, object]:
    response = await client.post("/api/v1/reports", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


async def test_an_alike_report_from_another_channel_joins_the_open_matter(
    client: httpx.AsyncClient, dedupe_settings: Settings
) -> None:
    first = await post(client, LAMPS)
    second = await post(client, AGAIN)

    assert second["duplicate_of"] == first["issue_id"] == second["issue_id"]
    assert second["report_id"] != first["report_id"]
    reports = (await client.get(f"/api/v1/issues/{first['issue_id']}/reports")).json()
    assert [r["source"] for r in reports] == ["hotline_12345", "visit"]
    assert [r["duplicate"] for r in reports] == [False, True]
    assert [r["reporter_phone_masked"] for r in reports] == ["138****5678", "139****4321"]
    assert "李四" not in str(reports) and "13987654321" not in str(reports)
    messages = await eventually(lambda: stream_messages(dedupe_settings), lambda m: len(m) >= 2)
    assert [m.subject.split(".events.")[1] for m in messages] == [
        "issue.reported",
        "issue.duplicate_reported",
    ]


async def test_a_wrong_match_is_split_into_a_matter_of_its_own(
    client: httpx.AsyncClient, dedupe_settings: Settings
) -> None:
    first = await post(client, LAMPS)
    second = await post(client, AGAIN)

    response = await client.post(
        f"/api/v1/issues/{first['issue_id']}/reports/{second['report_id']}/split",
        json={"reason": "西段的路灯, 另一处", "by": "supervisor-zhao"},
    )

    assert response.status_code == 201, response.text
    split = response.json()
    assert split["issue_id"] == second["report_id"] != first["issue_id"]
    left = (await client.get(f"/api/v1/issues/{first['issue_id']}/reports")).json()
    own = (await client.get(f"/api/v1/issues/{split['issue_id']}/reports")).json()
    assert [r["report_id"] for r in left] == [first["report_id"]]
    assert [(r["report_id"], r["duplicate"]) for r in own] == [(second["report_id"], False)]
    messages = await eventually(lambda: stream_messages(dedupe_settings), lambda m: len(m) >= 4)
    assert [m.subject.split(".events.")[1] for m in messages][2:] == [
        "issue.duplicate_split",
        "issue.reported",
    ]
    again = await client.post(
        f"/api/v1/issues/{first['issue_id']}/reports/{second['report_id']}/split",
        json={"reason": "twice", "by": "supervisor-zhao"},
    )
    assert again.status_code == 404


async def test_a_closed_matter_takes_no_more_reports(
    app: FastAPI, client: httpx.AsyncClient, dedupe_settings: Settings
) -> None:
    first = await post(client, LAMPS)
    passed = IssueLookbackPassed(
        visitor="line-staff-1",
        notes="lamps lit",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
        within_window=True,
    )
    await publish(
        dedupe_settings,
        envelope(passed, str(first["issue_id"]), actor="person:grid-7", service="followup"),
    )

    async def status() -> str | None:
        async with app.state.runtime.sessions() as session:
            query = select(matters.c.status).where(matters.c.issue_id == first["issue_id"])
            return cast(str | None, await session.scalar(query))

    await eventually(status, lambda s: s == "closed")
    fresh = await post(client, AGAIN)

    assert fresh["duplicate_of"] is None
    assert fresh["issue_id"] != first["issue_id"]


async def test_alike_reports_arriving_together_make_one_matter(
    client: httpx.AsyncClient,
) -> None:
    bodies = [{**LAMPS, "reporter": {"phone": f"1380000{n:04d}"}} for n in range(6)]

    results = await asyncio.gather(*(post(client, b) for b in bodies))

    assert len({r["issue_id"] for r in results}) == 1
    assert sum(r["duplicate_of"] is None for r in results) == 1
