"""Line staff over HTTP, on real PostgreSQL and NATS: the registry (seeded from
linestaff.toml, changed by operators, each change an event whose actor is the operator),
the check that only line staff of a matter's look-back unit record its look-back, a
member's own list of look-backs due, the earliest first, and the re-visits residents'
low scores put on it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from minqing.services.followup.app import create_app
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import IssueReported, IssueRevisitFlagged
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.principal import Role
from minqing.shared.service.settings import Settings
from tests.support.events import FRIDAY_MORNING, assigned, envelope, publish
from tests.support.harness import eventually, serve, stream_messages
from tests.support.identity import AS, enrol, person, token_of

MONDAY_MORNING = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 09:00 in Shihu
# A line staff member of the civil affairs office, at first in no registry entry.
CIVIL = person("civil", ("civil_affairs", Role.LINE_STAFF))
AS_CIVIL = {"Authorization": f"Bearer {token_of('civil')}"}
REPORTER_PHONE = "138****5678"


class Clock:
    """The service's clock, set by the test (each resolution's day is the test's)."""

    def __init__(self) -> None:
        self.now = FRIDAY_MORNING

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def followup(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock)
    async with serve(app) as client:
        await enrol(app.state.runtime.sessions, {"civil": CIVIL})
        yield client


def reported(village: str, title: str) -> Envelope:
    event = IssueReported(
        title=title,
        description="Seen on a visit",
        category="roads",
        village=village,
        source="village_branch",
        address=f"{title} lane 3",
        reporter_ref="rpt_1",
        reporter_phone_masked=REPORTER_PHONE,
    )
    return envelope(event, new_id(), actor="system:village_branch", service="intake")


async def a_resolved_matter(
    client: httpx.AsyncClient, settings: Settings, *, village: str = "xuma", title: str = "Road"
) -> str:
    """A matter assigned to the town construction office and resolved by it (on the
    service clock's day): grid_center's line staff look back at it (lookback.toml)."""
    report = reported(village, title)
    issue_id = report.subject
    await publish(settings, report, assigned(issue_id))
    await eventually(lambda: status_of(client, issue_id), lambda s: s == "assigned")
    done = await client.post(
        f"/api/v1/issues/{issue_id}/resolution",
        json={"unit": "town_construction", "summary": f"{title}: potholes filled"},
    )
    assert done.status_code == 201, done.text
    return issue_id


async def status_of(client: httpx.AsyncClient, issue_id: str) -> str | None:
    response = await client.get(f"/api/v1/issues/{issue_id}/case")
    return response.json()["status"] if response.status_code == 200 else None


async def registry(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    listed = await client.get("/api/v1/line-staff")
    assert listed.status_code == 200, listed.text
    return {entry["person_id"]: entry for entry in listed.json()}


def staff(unit: str, *villages: str, reason: str = "assigned by the town office") -> dict[str, Any]:
    return {"name": "钱立 Qian Li", "unit": unit, "villages": list(villages), "reason": reason}


async def test_the_registry_holds_the_reference_files_line_staff_by_name(
    followup: httpx.AsyncClient,
) -> None:
    found = await eventually(
        lambda: registry(followup), lambda got: "person:zhou.min" in got
    )  # seeded right after start-up

    assert found["person:zhou.min"] == {
        "person_id": "person:zhou.min",
        "person_name": "周敏 Zhou Min",
        "unit": "grid_center",
        "unit_name": "网格中心 Grid Center",
        "villages": [],
        "village_names": [],
    }
    assert found["person:gu.hong"]["village_names"] == [
        "三岐村 Sanqi Village",
        "戚庄村 Qizhuang Village",
        "徐马村 Xuma Village",
    ]
    assert found["person:line"]["unit"] == "grid_center"  # the test people's line staff
    only_civil = await followup.get("/api/v1/line-staff", params={"unit": "civil_affairs"})
    assert [e["person_id"] for e in only_civil.json()] == ["person:han.lei"]


async def test_operators_add_change_and_remove_line_staff_each_change_an_event(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    path = "/api/v1/line-staff/person:qian.li"
    added = await followup.put(path, json=staff("civil_affairs", "sanqi"), headers=AS["operator"])
    assert added.status_code == 200, added.text
    assert added.json()["unit_name"] == "民政办 Civil Affairs Office"
    same = await followup.put(path, json=staff("civil_affairs", "sanqi"), headers=AS["operator"])
    assert same.status_code == 200  # nothing changed: nothing recorded
    moved = await followup.put(
        path, json=staff("civil_affairs", "sanqi", "xuma"), headers=AS["operator"]
    )
    assert moved.json()["villages"] == ["sanqi", "xuma"]
    removed = await followup.delete(
        path, params={"reason": "moved to the county"}, headers=AS["operator"]
    )
    assert removed.status_code == 200, removed.text
    assert "person:qian.li" not in await registry(followup)
    again = await followup.delete(path, params={"reason": "twice"}, headers=AS["operator"])
    assert again.status_code == 404

    # Who may change it: operators; unit staff and line staff may read it only.
    for who in ("construction", "line", "supervisor"):
        refused = await followup.put(path, json=staff("civil_affairs"), headers=AS[who])
        assert refused.status_code == 403, (who, refused.text)
    bad = await followup.put(
        path,
        json={"name": "", "unit": "the_mayor", "villages": ["atlantis"], "reason": "x"},
        headers=AS["operator"],
    )
    assert bad.status_code == 422
    assert {e["loc"][1] for e in bad.json()["detail"]} == {"name", "unit", "villages"}

    async def changes() -> list[dict[str, Any]]:
        found = [json.loads(m.data) for m in await stream_messages(settings)]
        return [e for e in found if e["type"] == "minqing.linestaff.changed"]

    recorded = await eventually(changes, lambda got: len(got) >= 3)
    assert [(e["subject"], e["actor"], e["data"]["change"]) for e in recorded] == [
        ("person:qian.li", "person:operator", "added"),
        ("person:qian.li", "person:operator", "changed"),
        ("person:qian.li", "person:operator", "removed"),
    ]
    assert recorded[1]["data"]["previous_villages"] == ["sanqi"]
    assert recorded[2]["data"]["reason"] == "moved to the county"


async def test_only_line_staff_of_the_lookback_unit_record_the_lookback(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await a_resolved_matter(followup, settings)
    case = (await followup.get(f"/api/v1/issues/{issue_id}/case")).json()
    assert case["lookback_unit"] == "grid_center"
    visit = {"outcome": "passed", "notes": "Road is level"}
    path = f"/api/v1/issues/{issue_id}/lookback"

    unknown = await followup.post(path, json=visit, headers=AS_CIVIL)
    assert unknown.status_code == 403
    assert unknown.json()["detail"] == (
        "person:civil may not record this look-back: line staff of 网格中心 Grid Center "
        "(grid_center) look back at this matter, and they are not in the registry of line "
        "staff"
    )
    registered = await followup.put(
        "/api/v1/line-staff/person:civil", json=staff("civil_affairs"), headers=AS["operator"]
    )
    assert registered.status_code == 200
    other_unit = await followup.post(path, json=visit, headers=AS_CIVIL)
    assert other_unit.status_code == 403
    assert "line staff of 网格中心 Grid Center (grid_center)" in other_unit.json()["detail"]
    assert "the registry has them as line staff of civil_affairs" in other_unit.json()["detail"]
    assert await status_of(followup, issue_id) == "resolved"  # nothing was recorded

    moved = await followup.put(
        "/api/v1/line-staff/person:civil", json=staff("grid_center"), headers=AS["operator"]
    )
    assert moved.status_code == 200
    passed = await followup.post(path, json=visit, headers=AS_CIVIL)
    assert passed.status_code == 201, passed.text
    assert passed.json()["status"] == "closed"


async def test_line_staff_removed_from_the_registry_look_back_no_more(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await a_resolved_matter(followup, settings)
    gone = await followup.delete(
        "/api/v1/line-staff/person:line", params={"reason": "retired"}, headers=AS["operator"]
    )
    assert gone.status_code == 200

    refused = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "passed", "notes": "fine"},
        headers=AS["line"],
    )

    assert refused.status_code == 403
    assert "not in the registry of line staff" in refused.json()["detail"]
    mine = await followup.get("/api/v1/lookbacks/mine", headers=AS["line"])
    assert mine.status_code == 403


async def test_my_lookbacks_due_lists_my_units_matters_in_my_villages_by_due_date(
    followup: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    clock.now = MONDAY_MORNING
    later = await a_resolved_matter(followup, settings, village="xuma", title="Bridge")
    clock.now = FRIDAY_MORNING  # resolved on an earlier day: due first, though made after
    sooner = await a_resolved_matter(followup, settings, village="sanqi", title="Well")
    clock.now = MONDAY_MORNING
    elsewhere = await a_resolved_matter(followup, settings, village="dongfang", title="Lamp")
    # Resolved by the grid center itself: the civil affairs office looks back at it.
    not_ours = reported("xuma", "Ditch")
    await publish(settings, not_ours, assigned(not_ours.subject, unit="grid_center"))
    await eventually(lambda: status_of(followup, not_ours.subject), lambda s: s == "assigned")
    done = await followup.post(
        f"/api/v1/issues/{not_ours.subject}/resolution",
        json={"unit": "grid_center", "summary": "Ditch cleared"},
    )
    assert done.status_code == 201

    listed = await followup.get("/api/v1/lookbacks/mine", headers=AS["line"])

    assert listed.status_code == 200, listed.text
    mine = listed.json()
    assert (mine["person_id"], mine["unit"], mine["unit_name"]) == (
        "person:line",
        "grid_center",
        "网格中心 Grid Center",
    )
    tasks = mine["tasks"]
    assert [(t["issue_id"], t["due"]) for t in tasks] == [
        (sooner, "2026-12-08"),  # 7 working days after Friday 2026-11-27
        (later, "2026-12-09"),  # after Monday 2026-11-30; the same day: by matter
        (elsewhere, "2026-12-09"),
    ]
    well = tasks[0]
    assert {k: well[k] for k in ("kind", "due", "title", "village", "village_name")} == {
        "kind": "lookback",
        "due": "2026-12-08",  # 7 working days after Friday 2026-11-27
        "title": "Well",
        "village": "sanqi",
        "village_name": "三岐村 Sanqi Village",
    }
    assert (well["address"], well["summary"], well["unit_name"]) == (
        "Well lane 3",
        "Well: potholes filled",
        "建设管理所 Town Construction Office",
    )
    assert REPORTER_PHONE not in listed.text and "rpt_1" not in listed.text

    # Villages narrow the list: a member who visits Sanqi and Xuma only.
    narrowed = await followup.put(
        "/api/v1/line-staff/person:line",
        json={"name": "line", "unit": "grid_center", "villages": ["sanqi", "xuma"], "reason": "r"},
        headers=AS["operator"],
    )
    assert narrowed.status_code == 200
    again = (await followup.get("/api/v1/lookbacks/mine", headers=AS["line"])).json()
    assert [t["issue_id"] for t in again["tasks"]] == [sooner, later]

    # Someone not in the registry has no list (and other roles none at all).
    assert (await followup.get("/api/v1/lookbacks/mine", headers=AS_CIVIL)).status_code == 403
    assert (await followup.get("/api/v1/lookbacks/mine")).status_code == 403  # the desk


async def test_a_residents_low_score_puts_a_revisit_on_the_same_list(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    closed = await a_resolved_matter(followup, settings, village="xuma", title="Pump")
    passed = await followup.post(
        f"/api/v1/issues/{closed}/lookback",
        json={"outcome": "passed", "notes": "Pump runs"},
        headers=AS["line"],
    )
    assert passed.json()["status"] == "closed"
    pending = await a_resolved_matter(followup, settings, village="xuma", title="Gate")
    for issue_id in (closed, pending):
        flag = IssueRevisitFlagged(
            reply_id=f"rep_{issue_id}", reporter_ref="rpt_1", score=1, reason="still broken"
        )
        await publish(settings, envelope(flag, issue_id, actor="resident:rpt_1", service="intake"))

    async def tasks() -> list[dict[str, Any]]:
        mine = await followup.get("/api/v1/lookbacks/mine", headers=AS["line"])
        return list(mine.json()["tasks"])

    found = await eventually(tasks, lambda got: sum(1 for t in got if t["revisit_reason"]) == 2)
    by_id = {t["issue_id"]: t for t in found}
    assert (by_id[closed]["kind"], by_id[closed]["status"]) == ("revisit", "closed")
    assert by_id[closed]["revisit_reason"] == "score 1: still broken"
    assert by_id[closed]["due"] == by_id[closed]["revisit_due"] == "2026-12-08"
    # On a matter still awaiting its look-back, the look-back answers the resident.
    assert (by_id[pending]["kind"], by_id[pending]["status"]) == ("lookback", "resolved")

    await followup.post(
        f"/api/v1/issues/{pending}/lookback",
        json={"outcome": "failed", "notes": "Gate still jammed"},
        headers=AS["line"],
    )
    after = await tasks()
    assert pending not in {t["issue_id"] for t in after}  # back with its unit

    # The re-visit of the closed matter is recorded like a look-back; it stays closed.
    revisited = await followup.post(
        f"/api/v1/issues/{closed}/lookback",
        json={"outcome": "passed", "notes": "Pump runs; the resident saw it"},
        headers=AS["line"],
    )
    assert revisited.status_code == 201, revisited.text
    assert revisited.json()["status"] == "closed"
    assert await tasks() == []
    twice = await followup.post(
        f"/api/v1/issues/{closed}/lookback",
        json={"outcome": "passed", "notes": "again"},
        headers=AS["line"],
    )
    assert twice.status_code == 409

    async def revisits() -> list[dict[str, Any]]:
        found = [json.loads(m.data) for m in await stream_messages(settings)]
        return [e for e in found if e["type"] == "minqing.issue.revisit_recorded"]

    (recorded,) = await eventually(revisits, lambda got: len(got) == 1)
    assert (recorded["subject"], recorded["actor"]) == (closed, "person:line")
    assert recorded["data"]["reason"] == "score 1: still broken"


async def test_a_failed_revisit_reopens_the_closed_matter_and_counts_as_a_failed_look_back(
    followup: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = await a_resolved_matter(followup, settings, village="xuma", title="Well")
    failed = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "failed", "notes": "Well still muddy"},
        headers=AS["line"],
    )
    assert failed.json()["status"] == "reopened"
    # (assignment, not running here, would send it back; the test plays its part)
    await publish(settings, assigned(issue_id, number=2))
    await eventually(lambda: status_of(followup, issue_id), lambda s: s == "assigned")
    again = await followup.post(
        f"/api/v1/issues/{issue_id}/resolution",
        json={"unit": "town_construction", "summary": "Well: new filter"},
    )
    assert again.status_code == 201, again.text
    passed = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "passed", "notes": "Water clear"},
        headers=AS["line"],
    )
    assert passed.json()["status"] == "closed"
    flag = IssueRevisitFlagged(
        reply_id=f"rep_{issue_id}", reporter_ref="rpt_1", score=1, reason="muddy again"
    )
    await publish(settings, envelope(flag, issue_id, actor="resident:rpt_1", service="intake"))

    async def revisit_listed() -> list[dict[str, Any]]:
        mine = await followup.get("/api/v1/lookbacks/mine", headers=AS["line"])
        return [t for t in mine.json()["tasks"] if t["issue_id"] == issue_id]

    await eventually(revisit_listed, lambda got: [t["kind"] for t in got] == ["revisit"])
    revisited = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "failed", "notes": "Muddy after the rain"},
        headers=AS["line"],
    )
    assert revisited.status_code == 201, revisited.text
    assert revisited.json()["status"] == "reopened"
    assert await revisit_listed() == []  # back with its unit, off the list

    async def recorded() -> list[dict[str, Any]]:
        found = [json.loads(m.data) for m in await stream_messages(settings)]
        return [e for e in found if e["subject"] == issue_id]

    events = await eventually(recorded, lambda got: got[-1]["type"].endswith("escalated"))
    revisit, escalated = events[-2:]
    assert revisit["type"] == "minqing.issue.revisit_recorded"
    assert (revisit["data"]["outcome"], revisit["data"]["failures"]) == ("failed", 2)
    # the look-back that failed first, then this re-visit: the leader in charge is told
    assert (escalated["data"]["kind"], escalated["data"]["to_role"]) == (
        "lookback_failed",
        "leader_in_charge",
    )
    assert escalated["causationid"] == revisit["id"]
