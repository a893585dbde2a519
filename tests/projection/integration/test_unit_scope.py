"""The projection's reads scoped to what the caller reaches (issue 15).

A unit's staff read the matters assigned to their unit (a village's party branch also the
matters reported in its village, whoever has them): in the list (its total, pages and
cursors), its exports, one matter, its history and its printable page. Another unit's
matter is answered as an unknown one (404, the same body), so its existence is not told.
Town-wide roles read everything. Without the list kept here (``MINQING_PROJECTION_VIEWS=
history``), the history decides from its own trail.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from openpyxl import load_workbook

from minqing.services.projection.app import create_app
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.principal import Role
from minqing.shared.service.settings import Settings
from tests.support.events import assigned, publish, reported
from tests.support.harness import eventually, serve
from tests.support.identity import AS, enrol, person, token_of

LATER = datetime(2027, 1, 4, 2, 0, tzinfo=UTC)
# The staff of Sanqi's party branch: the matters reported in Sanqi, whoever has them.
BRANCH = {"sanqi_staff": person("sanqi_staff", ("sanqi_branch", Role.UNIT_STAFF))}
AS_BRANCH = {"Authorization": f"Bearer {token_of('sanqi_staff')}"}


@dataclass(frozen=True)
class Matters:
    """Five matters: two of construction's (in Xuma), one of the water station's reported
    in Sanqi, one reported in Sanqi and assigned to nobody yet, one of the water station's
    in Xuma."""

    built: tuple[str, str]
    water_in_sanqi: str
    unassigned_in_sanqi: str
    water_in_xuma: str

    @property
    def all(self) -> set[str]:
        return {*self.built, self.water_in_sanqi, self.unassigned_in_sanqi, self.water_in_xuma}


async def put(settings: Settings) -> Matters:
    matters = Matters(
        built=(new_id(), new_id()),
        water_in_sanqi=new_id(),
        unassigned_in_sanqi=new_id(),
        water_in_xuma=new_id(),
    )
    await publish(
        settings,
        *(reported(i, village="xuma") for i in matters.built),
        *(assigned(i) for i in matters.built),
        reported(matters.water_in_sanqi, category="water", village="sanqi"),
        assigned(matters.water_in_sanqi, unit="water_station"),
        reported(matters.unassigned_in_sanqi, village="sanqi"),
        reported(matters.water_in_xuma, category="water", village="xuma"),
        assigned(matters.water_in_xuma, unit="water_station"),
    )
    return matters


@pytest.fixture
async def projection(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Matters]]:
    app = create_app(settings, clock=lambda: LATER)
    async with serve(app) as client:
        await enrol(app.state.runtime.sessions, BRANCH)
        matters = await put(settings)
        await eventually(lambda: listed(client), lambda ids: ids == matters.all)
        # the audit trail is its own consumer: wait for it too
        for issue_id in matters.all:
            await eventually(
                lambda i=issue_id: client.get(f"/api/v1/issues/{i}/history"),  # type: ignore[misc]
                lambda r: r.status_code == 200 and len(r.json()["events"]) >= 1,
            )
        yield client, matters


async def page(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: str
) -> dict[str, object]:
    response = await client.get("/api/v1/issues", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def listed(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: str
) -> set[str]:
    items = (await page(client, headers, limit="500", **params))["items"]
    assert isinstance(items, list)
    return {item["issue_id"] for item in items}


def reads(issue_id: str) -> list[str]:
    """Every read of one matter by id."""
    return [
        f"/api/v1/issues/{issue_id}",
        f"/api/v1/issues/{issue_id}?as_of=2027-01-04T02:00:00Z",  # LATER
        f"/api/v1/issues/{issue_id}/history",
        f"/api/v1/issues/{issue_id}/history.html",
    ]


async def exported(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[set[str], set[str]]:
    """The matters in the CSV and in the XLSX export (the first column: 编号)."""
    response = await client.get("/api/v1/issues/export.csv", headers=headers)
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    in_csv = {row[0] for row in rows[1:]}
    response = await client.get("/api/v1/issues/export.xlsx", headers=headers)
    assert response.status_code == 200, response.text
    sheet = load_workbook(io.BytesIO(response.content), read_only=True)["台账"]
    in_xlsx = {str(row[0]) for row in sheet.iter_rows(min_row=2, values_only=True)}
    return in_csv, in_xlsx


async def test_a_units_staff_list_only_their_units_matters_and_the_total_says_so(
    projection: tuple[httpx.AsyncClient, Matters],
) -> None:
    client, matters = projection
    built = AS["construction"]

    first = await page(client, built, limit="1")
    assert (first["total"], first["total_capped"]) == (2, False)
    assert isinstance(first["next_cursor"], str)
    second = await page(client, built, limit="1", cursor=first["next_cursor"])
    assert second["next_cursor"] is None  # the cursor pages through their matters only
    assert (await page(client, built, limit="1", offset="1"))["items"] == second["items"]
    items = [*first["items"], *second["items"]]  # type: ignore[misc]
    assert [item["issue_id"] for item in items] == sorted(matters.built, reverse=True)

    # asking for another unit's matters, or as of a past time, finds no more of them
    assert (await page(client, built, unit="water_station"))["total"] == 0
    assert await listed(client, built, village="sanqi") == set()
    assert await listed(client, built, as_of=LATER.isoformat()) == set(matters.built)
    for sort in ("deadline", "updated", "oldest"):
        assert await listed(client, built, sort=sort) == set(matters.built)

    assert await listed(client, AS["water"]) == {matters.water_in_sanqi, matters.water_in_xuma}


async def test_another_units_matter_is_answered_as_an_unknown_one(
    projection: tuple[httpx.AsyncClient, Matters],
) -> None:
    client, matters = projection
    built = AS["construction"]
    unknown = {path: await client.get(path, headers=built) for path in reads(new_id())}

    for theirs in (matters.water_in_sanqi, matters.water_in_xuma, matters.unassigned_in_sanqi):
        for path, nobodys in zip(reads(theirs), unknown.values(), strict=True):
            response = await client.get(path, headers=built)
            assert response.status_code == 404, path
            assert response.json() == nobodys.json(), path
    for path in reads(matters.built[0]):
        assert (await client.get(path, headers=built)).status_code == 200, path


async def test_a_village_branch_reaches_the_matters_reported_in_its_village(
    projection: tuple[httpx.AsyncClient, Matters],
) -> None:
    client, matters = projection
    sanqi = {matters.water_in_sanqi, matters.unassigned_in_sanqi}

    assert await listed(client, AS_BRANCH) == sanqi
    assert (await page(client, AS_BRANCH))["total"] == 2
    for issue_id in sanqi:  # the water station's, and nobody's yet: both in Sanqi
        for path in reads(issue_id):
            assert (await client.get(path, headers=AS_BRANCH)).status_code == 200, path
    for path in reads(matters.water_in_xuma):
        assert (await client.get(path, headers=AS_BRANCH)).status_code == 404, path
    assert await exported(client, AS_BRANCH) == (sanqi, sanqi)


async def test_town_wide_roles_read_every_matter(
    projection: tuple[httpx.AsyncClient, Matters],
) -> None:
    client, matters = projection
    for who in ("supervisor", "inspector", "line"):
        assert await listed(client, AS[who]) == matters.all, who
        assert (await page(client, AS[who]))["total"] == 5, who
        for path in reads(matters.water_in_sanqi):
            assert (await client.get(path, headers=AS[who])).status_code == 200, (who, path)
    assert await exported(client, AS["supervisor"]) == (matters.all, matters.all)
    stats = (await client.get("/api/v1/stats", headers=AS["supervisor"])).json()
    assert stats["matters"]["value"] == 5


async def test_the_exports_hold_what_the_list_does(
    projection: tuple[httpx.AsyncClient, Matters],
) -> None:
    client, matters = projection
    built = set(matters.built)
    assert await exported(client, AS["construction"]) == (built, built)


async def test_without_the_list_the_history_decides_from_its_own_trail(
    settings: Settings,
) -> None:
    """MINQING_PROJECTION_VIEWS=history: the matter's unit is its latest assignment's and
    its village its report's, as the trail tells."""
    only = settings.model_copy(update={"projection_views": "history"})
    app = create_app(only, clock=lambda: LATER)
    async with serve(app) as client:
        await enrol(app.state.runtime.sessions, BRANCH)
        matters = await put(only)
        moved = new_id()  # the water station's first, then construction's
        await publish(
            only,
            reported(moved, village="xuma"),
            assigned(moved, unit="water_station"),
            assigned(moved, unit="town_construction", number=2),
        )
        for issue_id in matters.all | {moved}:
            await eventually(
                lambda i=issue_id: client.get(f"/api/v1/issues/{i}/history"),  # type: ignore[misc]
                lambda r: r.status_code == 200 and len(r.json()["events"]) >= 1,
            )

        async def status(issue_id: str, who: dict[str, str]) -> int:
            return (await client.get(f"/api/v1/issues/{issue_id}/history", headers=who)).status_code

        built, water = AS["construction"], AS["water"]
        assert await status(matters.built[0], built) == 200
        assert await status(moved, built) == 200
        assert await status(moved, water) == 404  # no longer theirs
        assert await status(matters.water_in_sanqi, built) == 404
        assert await status(matters.water_in_sanqi, water) == 200
        assert await status(matters.unassigned_in_sanqi, water) == 404
        assert await status(matters.water_in_sanqi, AS_BRANCH) == 200
        assert await status(matters.unassigned_in_sanqi, AS_BRANCH) == 200
        assert await status(matters.water_in_xuma, AS_BRANCH) == 404
        for issue_id in matters.all | {moved}:
            assert await status(issue_id, AS["supervisor"]) == 200


async def test_reach_is_decided_on_the_unit_a_matter_has_now_even_as_of_the_past(
    projection: tuple[httpx.AsyncClient, Matters], settings: Settings
) -> None:
    """A matter re-assigned from the water station to construction is construction's, all
    of it (in the list as of a time it was the water station's too), and no longer the
    water station's."""
    client, _ = projection
    moved = new_id()
    moving = assigned(moved, unit="town_construction", number=2)
    await publish(
        settings,
        reported(moved, village="xuma"),
        assigned(moved, unit="water_station"),
        moving.model_copy(update={"time": moving.time + timedelta(days=1)}),
    )
    built, water = AS["construction"], AS["water"]
    await eventually(lambda: listed(client, built), lambda ids: moved in ids)
    then = {"as_of": (moving.time + timedelta(hours=1)).isoformat()}  # the water station's

    before = await client.get(f"/api/v1/issues/{moved}", params=then, headers=built)
    assert before.status_code == 200 and before.json()["unit"] == "water_station"
    assert moved in await listed(client, built, **then)
    assert moved not in await listed(client, water, **then)
    assert moved not in await listed(client, water)
    for path in reads(moved):
        assert (await client.get(path, headers=water)).status_code == 404, path
