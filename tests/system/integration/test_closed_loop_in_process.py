"""The four services in one process, over a real NATS and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.followup.app import create_app as followup_app
from minqing.services.intake.app import create_app as intake_app
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, serve
from tests.support.identity import AS

REPORT = {
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps between the school and the market have been dark for a week.",
    "category": "street_lights",
    "village": "shihu",
    "source": "hotline_12345",
    "reporter": {"name": "Zhang San", "phone": "138 0000 1234"},
    "location": {"address": "Shiguan Road", "lat": 33.51, "lon": 119.21},
}


@dataclass
class Town:
    intake: httpx.AsyncClient
    followup: httpx.AsyncClient
    projection: httpx.AsyncClient

    async def history_types(self, issue_id: str) -> list[str]:
        response = await self.projection.get(f"/api/v1/issues/{issue_id}/history")
        if response.status_code == 404:
            return []
        return [e["type"] for e in response.json()["events"]]

    async def case_status(self, issue_id: str) -> str | None:
        response = await self.followup.get(f"/api/v1/issues/{issue_id}/case")
        return response.json()["status"] if response.status_code == 200 else None

    async def wait_until_assigned(self, issue_id: str) -> None:
        """Followup learns of the assignment from the stream too; wait until it has."""
        await eventually(lambda: self.case_status(issue_id), lambda status: status == "assigned")

    async def wait_for(self, issue_id: str, *types: str) -> list[str]:
        """Wait for the matter's own steps; answers to its reporters, which intake sends as
        they come (``issue.reporter_replied``), may fall anywhere between them."""

        async def steps() -> list[str]:
            got = await self.history_types(issue_id)
            return [t for t in got if t != "minqing.issue.reporter_replied"]

        return await eventually(steps, lambda got: got == [f"minqing.{t}" for t in types])


@pytest.fixture
async def town(settings: Settings) -> AsyncIterator[Town]:
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serve(intake_app(settings)))
        await stack.enter_async_context(serve(assignment_app(settings)))
        followup = await stack.enter_async_context(serve(followup_app(settings)))
        projection = await stack.enter_async_context(serve(projection_app(settings)))
        yield Town(intake, followup, projection)


async def test_a_matter_goes_round_the_whole_loop(town: Town) -> None:
    created = await town.intake.post("/api/v1/reports", json=REPORT)
    assert created.status_code == 201, created.text
    issue_id = created.json()["issue_id"]
    await town.wait_for(issue_id, "issue.reported", "issue.assigned")

    issue = (await town.projection.get(f"/api/v1/issues/{issue_id}")).json()
    assert issue["status"] == "assigned"
    assert issue["unit"] == "town_construction"
    assert issue["responsible_person_id"] == "shihu-secretary"
    await town.wait_until_assigned(issue_id)

    resolved = await town.followup.post(
        f"/api/v1/issues/{issue_id}/resolution",
        json={"unit": "town_construction", "summary": "Replaced six lamps", "resolved_by": "wu"},
    )
    assert resolved.status_code == 201, resolved.text
    passed = await town.followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "passed", "visitor": "grid-worker-7", "notes": "All lit at night"},
        headers=AS["line"],
    )
    assert passed.status_code == 201, passed.text
    await town.wait_for(
        issue_id, "issue.reported", "issue.assigned", "issue.resolved", "issue.lookback_passed"
    )
    issue = (await town.projection.get(f"/api/v1/issues/{issue_id}")).json()
    assert issue["status"] == "closed"
    # The reporter was answered when it was resolved, and when it was closed.
    replies = await eventually(
        lambda: town.history_types(issue_id),
        lambda got: got.count("minqing.issue.reporter_replied") == 2,
    )
    assert len(replies) == 6


async def test_a_failed_lookback_reopens_and_reassigns_the_matter(town: Town) -> None:
    issue_id = (await town.intake.post("/api/v1/reports", json=REPORT)).json()["issue_id"]
    await town.wait_until_assigned(issue_id)
    await town.followup.post(
        f"/api/v1/issues/{issue_id}/resolution",
        json={"unit": "town_construction", "summary": "Fixed"},
    )
    failed = await town.followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "failed", "visitor": "grid-worker-7", "notes": "Two lamps still dark"},
        headers=AS["line"],
    )
    assert failed.status_code == 201, failed.text
    assert failed.json()["status"] == "reopened"
    await town.wait_for(
        issue_id,
        "issue.reported",
        "issue.assigned",
        "issue.resolved",
        "issue.lookback_failed",
        "issue.assigned",
    )
    issue = (await town.projection.get(f"/api/v1/issues/{issue_id}")).json()
    assert issue["status"] == "assigned"
    assert issue["assignment_no"] == 2
