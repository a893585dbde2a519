"""Followup over HTTP: each wrong step is refused with its reason, bad input with a 422."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from minqing.services.followup.app import create_app
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.support.events import FRIDAY_MORNING, assigned, publish, reported
from tests.support.harness import eventually, serve
from tests.support.identity import AS


@pytest.fixture
async def followup(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings, clock=lambda: FRIDAY_MORNING)) as client:
        yield client


async def status_of(client: httpx.AsyncClient, issue_id: str) -> str | None:
    response = await client.get(f"/api/v1/issues/{issue_id}/case")
    return response.json()["status"] if response.status_code == 200 else None


async def a_matter(client: httpx.AsyncClient, settings: Settings, *, assign: bool) -> str:
    issue_id = new_id()
    await publish(settings, reported(issue_id), *([assigned(issue_id)] if assign else []))
    want = "assigned" if assign else "reported"
    await eventually(lambda: status_of(client, issue_id), lambda s: s == want)
    return issue_id


def resolution(unit: str = "town_construction") -> dict[str, str]:
    return {"unit": unit, "summary": "Road padded"}


async def test_an_unknown_matter_is_404(followup: httpx.AsyncClient) -> None:
    missing = new_id()
    for path, body in (
        ("resolution", resolution()),
        ("lookback", {"outcome": "passed", "visitor": "v", "notes": ""}),
    ):
        as_ = AS["line"] if path == "lookback" else None
        response = await followup.post(f"/api/v1/issues/{missing}/{path}", json=body, headers=as_)
        assert response.status_code == 404, response.text
    assert (await followup.get(f"/api/v1/issues/{missing}/case")).status_code == 404


async def test_a_matter_not_yet_assigned_is_no_units_to_resolve(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    """Unit staff reach the matters assigned to their unit; one assigned to none is, for
    them, no matter at all (the rule's own 409 is the domain's: tested there)."""
    issue_id = await a_matter(followup, settings, assign=False)
    response = await followup.post(f"/api/v1/issues/{issue_id}/resolution", json=resolution())
    assert response.status_code == 404
    seen = await followup.get(f"/api/v1/issues/{issue_id}/case", headers=AS["construction"])
    assert seen.status_code == 404  # and no unit's staff see it
    assert (
        await followup.get(f"/api/v1/issues/{issue_id}/case")
    ).status_code == 200  # a supervisor does


async def test_only_the_assigned_unit_can_resolve(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await a_matter(followup, settings, assign=True)
    response = await followup.post(
        f"/api/v1/issues/{issue_id}/resolution", json=resolution("water_station")
    )
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "the matter is assigned to town_construction, not to water_station"
    )


async def test_a_lookback_before_resolution_and_after_closing_is_refused(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await a_matter(followup, settings, assign=True)
    visit = {"outcome": "passed", "visitor": "grid-worker-1", "notes": "ok"}
    early = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback", json=visit, headers=AS["line"]
    )
    assert early.status_code == 409
    assert "after resolution" in early.json()["detail"]

    done = await followup.post(f"/api/v1/issues/{issue_id}/resolution", json=resolution())
    assert done.status_code == 201
    assert done.json()["lookback_due"] == "2026-12-08"  # 7 working days after 2026-11-27
    twice = await followup.post(f"/api/v1/issues/{issue_id}/resolution", json=resolution())
    assert twice.status_code == 409
    assert "already resolved" in twice.json()["detail"]

    assert (
        await followup.post(f"/api/v1/issues/{issue_id}/lookback", json=visit, headers=AS["line"])
    ).json()["status"] == "closed"
    late = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback", json=visit, headers=AS["line"]
    )
    assert late.status_code == 409
    assert "closed" in late.json()["detail"]
    again = await followup.post(f"/api/v1/issues/{issue_id}/resolution", json=resolution())
    assert again.status_code == 409


async def test_bad_input_is_a_422_naming_the_fields(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await a_matter(followup, settings, assign=True)
    bad_resolution = await followup.post(
        f"/api/v1/issues/{issue_id}/resolution", json={"unit": "the_mayor", "summary": " "}
    )
    assert bad_resolution.status_code == 422
    errors = {e["loc"][-1]: e["msg"] for e in bad_resolution.json()["detail"]}
    assert set(errors) == {"unit", "summary"}
    assert "xuma_branch" in errors["unit"]  # the valid codes are listed

    bad_visit = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "meh", "visitor": ""},
        headers=AS["line"],
    )
    assert bad_visit.status_code == 422
    assert {e["loc"][-1] for e in bad_visit.json()["detail"]} == {"outcome", "visitor"}

    await followup.post(f"/api/v1/issues/{issue_id}/resolution", json=resolution())
    silent_failure = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "failed", "visitor": "grid-worker-1", "notes": ""},
        headers=AS["line"],
    )
    assert silent_failure.status_code == 422
    assert "notes must say what is still wrong" in silent_failure.text
    assert await status_of(followup, issue_id) == "resolved"  # nothing was recorded


async def test_every_date_followup_shows_names_its_calendar(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await a_matter(followup, settings, assign=True)

    case = (await followup.get(f"/api/v1/issues/{issue_id}/case")).json()

    assert case["deadline_calendar"] == "weekdays"  # as issue.assigned said
    assert case["calendar"].startswith("cn-official (chinesecalendar")
