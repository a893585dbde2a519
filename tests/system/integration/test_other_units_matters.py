"""A token of one unit acting on another unit's matter: every step and every read of it is
a 404, exactly as for a matter that does not exist (its existence is not confirmed), and
nothing is recorded; on its own unit's matter the same token works."""

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
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, serve, stream_messages
from tests.support.identity import AS

LIGHTS = {
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps dark for a week.",
    "category": "street_lights",  # routed to town_construction
    "village": "shihu",
    "source": "hotline_12345",
    "reporter": {"name": "Zhang San", "phone": "138 0000 1234"},
}


@dataclass
class Town:
    clients: dict[str, httpx.AsyncClient]
    settings: Settings

    def __getitem__(self, service: str) -> httpx.AsyncClient:
        return self.clients[service]


@pytest.fixture
async def town(settings: Settings) -> AsyncIterator[Town]:
    async with AsyncExitStack() as stack:
        clients = {}
        for name, create in (
            ("intake", intake_app),
            ("assignment", assignment_app),
            ("followup", followup_app),
            ("projection", projection_app),
        ):
            clients[name] = await stack.enter_async_context(serve(create(settings)))
        yield Town(clients, settings)


# (service, method, path, body): every step and read a unit's staff may take on a matter
STEPS = [
    ("followup", "POST", "resolution", {"unit": "town_construction", "summary": "Fixed"}),
    ("followup", "PUT", "plan", {"template": "road_repair"}),
    ("followup", "POST", "progress", {"milestone": 1, "done": True}),
    ("followup", "POST", "funding", {"amount": "10", "source": "self_raised", "status": "applied"}),
    ("followup", "GET", "case", None),
    ("assignment", "POST", "acceptance", {}),
    ("assignment", "POST", "send-back", {"unit": "town_construction", "reason": "not ours"}),
    ("assignment", "GET", "assignment", None),
    ("intake", "GET", "reports", None),
    ("intake", "GET", "supervisors", None),
    ("intake", "GET", "supervision", None),
    ("intake", "GET", "replies", None),
    ("intake", "GET", "photos", None),
    ("projection", "GET", "", None),
    ("projection", "GET", "history", None),
    ("projection", "GET", "history.html", None),
]


async def step(
    town: Town, who: str, issue_id: str, service: str, method: str, path: str, body: object
) -> httpx.Response:
    url = f"/api/v1/issues/{issue_id}" + (f"/{path}" if path else "")
    return await town[service].request(method, url, json=body, headers=AS[who])


async def test_another_units_matter_is_not_found_and_untouched(town: Town) -> None:
    created = await town["intake"].post("/api/v1/reports", json=LIGHTS)
    issue_id = created.json()["issue_id"]

    async def case() -> int:
        return (
            await step(town, "construction", issue_id, "followup", "GET", "case", None)
        ).status_code

    await eventually(case, lambda status: status == 200)  # assigned to town_construction
    await eventually(
        lambda: step(town, "construction", issue_id, "projection", "GET", "", None),
        lambda r: r.status_code == 200,
    )
    recorded = len(await stream_messages(town.settings))
    unknown = new_id()
    for service, method, path, body in STEPS:
        theirs = await step(town, "water", issue_id, service, method, path, body)
        nothing = await step(town, "water", unknown, service, method, path, body)
        where = (service, method, path)
        assert theirs.status_code == 404, (where, theirs.text)
        assert theirs.status_code == nothing.status_code, where
        if theirs.headers["content-type"].startswith("application/json"):
            assert theirs.json().keys() == nothing.json().keys(), where
    assert len(await stream_messages(town.settings)) == recorded  # nothing recorded

    # The unit it is assigned to reads it and resolves it.
    for service, path in (("intake", "reports"), ("assignment", "assignment"), ("projection", "")):
        mine = await step(town, "construction", issue_id, service, "GET", path, None)
        assert mine.status_code == 200, (service, path, mine.text)
    resolved = await step(town, "construction", issue_id, *STEPS[0][:3], STEPS[0][3])
    assert resolved.status_code == 201, resolved.text
