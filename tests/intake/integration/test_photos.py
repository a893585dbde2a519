"""Staff's photos on a real intake (and followup), a real NATS and a real PostgreSQL:
uploaded once, served privately to those who may see them, attached by the step that
names them (a report here and then; a resolution or look-back when intake reads
followup's event), and pruned by the retention rule on a clock the test moves."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from minqing.services import cli
from minqing.services.followup.app import create_app as followup_app
from minqing.services.intake.app import create_app
from minqing.services.intake.photos.handlers import prune_photos
from minqing.services.intake.photos.store import SqlPhotos
from minqing.services.intake.photos.tables import photos
from minqing.services.intake.photos.wiring import retention
from minqing.services.intake.store import reports
from minqing.shared.contract.envelope import Envelope, wrap
from minqing.shared.contract.events import IssueResolved, IssueRevisitRecorded, PhotoRef
from minqing.shared.domain.ids import new_id
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings
from tests.support.clock import SetClock
from tests.support.events import FRIDAY_MORNING, assigned, publish
from tests.support.harness import eventually, serve, stream_messages
from tests.support.identity import AS

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(200))
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(64)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'

LIGHTS = {
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps dark for a week.",
    "category": "street_lights",  # routed to town_construction
    "village": "shihu",
    "source": "visit",
}
UNIT = "town_construction"


@dataclass
class Intake:
    client: httpx.AsyncClient
    rt: Runtime
    clock: SetClock
    settings: Settings

    async def upload(
        self, content: bytes = PNG, kind: str = "image/png", *, who: str = "construction"
    ) -> httpx.Response:
        return await self.client.post(
            "/api/v1/photos", files={"photo": ("p", content, kind)}, headers=AS[who]
        )

    async def uploaded(self, content: bytes = PNG, *, who: str = "construction") -> dict[str, Any]:
        kind = {PNG: "image/png", JPEG: "image/jpeg", WEBP: "image/webp"}[content]
        response = await self.upload(content, kind, who=who)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def photo(self, photo_id: str, who: str | None) -> httpx.Response:
        headers = AS[who] if who else {"Authorization": ""}
        return await self.client.get(f"/api/v1/photos/{photo_id}", headers=headers)

    async def listed(self, issue_id: str, who: str) -> httpx.Response:
        return await self.client.get(f"/api/v1/issues/{issue_id}/photos", headers=AS[who])

    async def stored(self) -> int:
        async with self.rt.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(photos)) or 0)


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[Intake]:
    clock = SetClock(FRIDAY_MORNING)
    app = create_app(settings, clock=clock)
    async with serve(app) as client:
        yield Intake(client, app.state.runtime, clock, settings)


def ref(body: dict[str, Any]) -> dict[str, str]:
    return {"photo_id": body["photo_id"], "sha256": body["sha256"]}


async def events_of(settings: Settings, short_type: str) -> list[Envelope]:
    found = [Envelope.model_validate_json(m.data) for m in await stream_messages(settings)]
    return [e for e in found if e.short_type == short_type]


async def report(intake: Intake, who: str, **extra: Any) -> httpx.Response:
    return await intake.client.post("/api/v1/reports", json={**LIGHTS, **extra}, headers=AS[who])


async def assigned_to_unit(intake: Intake, issue_id: str) -> None:
    """The matter assigned to town_construction, as intake learns it from the stream."""
    await publish(intake.settings, assigned(issue_id, unit=UNIT))

    async def unit() -> int:
        return (await intake.listed(issue_id, "construction")).status_code

    await eventually(unit, lambda status: status == 200)


# ------------------------------------------------------------------------- upload, serve


async def test_a_photo_is_stored_once_and_served_privately(intake: Intake) -> None:
    first = await intake.upload()
    assert first.status_code == 201, first.text
    body = first.json()
    assert body == {
        "photo_id": body["photo_id"],
        "sha256": hashlib.sha256(PNG).hexdigest(),
        "content_type": "image/png",
        "size": len(PNG),
    }
    again = await intake.upload()  # a retry of the same bytes: the same photo
    assert (again.status_code, again.json()) == (200, body)
    other = await intake.upload(JPEG, "image/jpeg")  # other bytes: another photo
    assert other.status_code == 201 and other.json()["photo_id"] != body["photo_id"]
    theirs = await intake.upload(who="water")  # the same bytes by someone else: theirs
    assert theirs.status_code == 201 and theirs.json()["photo_id"] != body["photo_id"]
    assert await intake.stored() == 3

    mine = await intake.photo(body["photo_id"], "construction")
    assert mine.status_code == 200 and mine.content == PNG
    assert mine.headers["content-type"] == "image/png"
    assert mine.headers["cache-control"] == "private, no-store"
    assert mine.headers["x-content-type-options"] == "nosniff"
    assert (await intake.photo(body["photo_id"], "supervisor")).content == PNG
    assert (await intake.photo(body["photo_id"], "inspector")).status_code == 200
    # Not on a matter yet: another unit's staff and a reporter do not see it, as if absent.
    unknown = await intake.photo(new_id(), "water")
    for who in ("water", "reporter"):
        hidden = await intake.photo(body["photo_id"], who)
        assert hidden.status_code == 404 == unknown.status_code
        assert hidden.json().keys() == unknown.json().keys()
    assert (await intake.photo(body["photo_id"], None)).status_code == 401
    assert (await intake.photo("not-an-id", "supervisor")).status_code == 404


async def test_too_large_a_type_not_accepted_and_bytes_of_another_type_are_refused(
    settings: Settings,
) -> None:
    small = settings.model_copy(update={"photo_max_bytes": 1024})
    app = create_app(small, clock=SetClock(FRIDAY_MORNING))
    async with serve(app) as client:
        intake = Intake(client, app.state.runtime, SetClock(FRIDAY_MORNING), small)
        large = await intake.upload(PNG)  # 1,032 bytes
        assert large.status_code == 413
        assert large.json()["detail"] == "the photo is larger than 1024 bytes, the limit"
        svg = await intake.upload(SVG, "image/svg+xml")
        assert svg.status_code == 415
        assert "image/svg+xml" in svg.json()["detail"] and "image/jpeg" in svg.json()["detail"]
        gif = await intake.upload(b"GIF89a" + bytes(20), "image/gif")
        assert gif.status_code == 415
        renamed = await intake.upload(JPEG, "image/png")
        assert renamed.status_code == 422
        assert renamed.json()["detail"] == "photo: declared image/png, but the bytes are image/jpeg"
        page = await intake.upload(b"<html><script></script></html>", "image/webp")
        assert page.status_code == 422 and "none of the accepted types" in page.text
        empty = await intake.upload(b"", "image/png")
        assert (empty.status_code, empty.json()["detail"]) == (422, "the photo is empty")
        missing = await client.post("/api/v1/photos", data={"nothing": "here"})
        assert missing.status_code == 422
        assert await intake.stored() == 0
        webp = await intake.upload(WEBP, "image/webp")
        assert webp.status_code == 201 and webp.json()["content_type"] == "image/webp"


# ------------------------------------------------------------------------ attach: report


async def test_a_report_attaches_its_photos_and_its_event_names_them(intake: Intake) -> None:
    photo = await intake.uploaded(who="reporter")
    second = await intake.uploaded(JPEG, who="reporter")
    created = await report(intake, "reporter", photos=[ref(photo), ref(second)])
    assert created.status_code == 201, created.text
    issue_id = created.json()["issue_id"]

    [event] = await eventually(
        lambda: events_of(intake.settings, "issue.reported"), lambda found: len(found) == 1
    )
    assert event.actor == "person:reporter"
    assert event.data["photos"] == [ref(photo), ref(second)]

    listed = await intake.listed(issue_id, "reporter")  # its own photos, on any matter
    assert listed.status_code == 200
    assert [(p["photo_id"], p["stage"], p["pruned"]) for p in listed.json()] == [
        (photo["photo_id"], "reported", False),
        (second["photo_id"], "reported", False),
    ]
    assert listed.json()[0]["sha256"] == photo["sha256"]
    assert (await intake.listed(issue_id, "supervisor")).json() == listed.json()
    assert (await intake.listed(issue_id, "line")).status_code == 200

    # Assigned to town_construction: its staff see the photos; another unit's do not.
    await assigned_to_unit(intake, issue_id)
    assert (await intake.photo(photo["photo_id"], "construction")).content == PNG
    nothing = await intake.listed(new_id(), "water")
    for response in (
        await intake.photo(photo["photo_id"], "water"),
        await intake.listed(issue_id, "water"),
    ):
        assert response.status_code == 404 == nothing.status_code
        assert response.json().keys() == nothing.json().keys()
    # Line staff (town-wide) see them, as the desk does.
    assert (await intake.photo(second["photo_id"], "line")).content == JPEG


async def test_a_report_may_attach_only_its_reporters_own_unattached_photos(
    intake: Intake,
) -> None:
    theirs = await intake.uploaded(who="construction")
    mine = await intake.uploaded(JPEG, who="reporter")
    before = len(await stream_messages(intake.settings))

    async def refused(photos: list[dict[str, str]], sentence: str) -> None:
        response = await report(intake, "reporter", photos=photos)
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == sentence

    await refused(
        [ref(mine), ref(theirs)],
        f"photos[1]: photo {theirs['photo_id']} was uploaded by someone else",
    )
    await refused(
        [{"photo_id": mine["photo_id"], "sha256": "0" * 64}],
        f"photos[0]: photo {mine['photo_id']} has another SHA-256 than the one given",
    )
    unknown = new_id()
    await refused(
        [{"photo_id": unknown, "sha256": "0" * 64}], f"photos[0]: photo {unknown} does not exist"
    )
    twice = await report(intake, "reporter", photos=[ref(mine), ref(mine)])
    assert twice.status_code == 422 and "more than once" in twice.text
    eleven = [{"photo_id": new_id(), "sha256": "a" * 64} for _ in range(11)]
    assert (await report(intake, "reporter", photos=eleven)).status_code == 422
    # Nothing was recorded, and the reporter's photo is still free to attach.
    async with intake.rt.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(reports)) == 0
    await asyncio.sleep(0.3)  # the relay's poll: an event would be on the stream by now
    assert len(await stream_messages(intake.settings)) == before
    created = await report(intake, "reporter", photos=[ref(mine)])
    assert created.status_code == 201, created.text
    # Once on a matter, no other report takes it.
    await refused([ref(mine)], f"photos[0]: photo {mine['photo_id']} is already on a matter")
    # A retry of the same report (its Idempotency-Key) is the same answer, not a refusal.
    keyed = {"Idempotency-Key": "visit-7", **AS["reporter"]}
    own = await intake.uploaded(WEBP, who="reporter")
    body = {**LIGHTS, "photos": [ref(own)]}
    one = await intake.client.post("/api/v1/reports", json=body, headers=keyed)
    two = await intake.client.post("/api/v1/reports", json=body, headers=keyed)
    assert (one.status_code, two.status_code) == (201, 200)
    assert one.json()["issue_id"] == two.json()["issue_id"]


# --------------------------------------------------------- attach: followup's events


def resolved_with(issue_id: str, photos: list[dict[str, str]], actor: str) -> Envelope:
    event = IssueResolved(
        unit=UNIT,
        summary="Lamps replaced",
        resolved_by=actor,
        assignment_no=1,
        lookback_due=FRIDAY_MORNING.date() + timedelta(days=11),
        photos=tuple(PhotoRef(**p) for p in photos),
    )
    return wrap(event, issue_id=issue_id, service="followup", actor=actor, time=FRIDAY_MORNING)


async def test_a_resolution_read_from_the_stream_attaches_only_its_actors_photos(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    created = await report(intake, "reporter")
    issue_id = created.json()["issue_id"]
    await assigned_to_unit(intake, issue_id)
    mine = await intake.uploaded(who="construction")
    other = await intake.uploaded(JPEG, who="water")
    wrong_hash = await intake.uploaded(WEBP, who="construction")
    named = [ref(mine), ref(other), {"photo_id": wrong_hash["photo_id"], "sha256": "f" * 64}]
    caplog.set_level(logging.WARNING, logger="minqing.intake.photos")
    envelope = resolved_with(issue_id, named, "person:construction")
    await publish(intake.settings, envelope)

    async def on_matter() -> list[tuple[str, str]]:
        response = await intake.listed(issue_id, "supervisor")
        return [(p["photo_id"], p["stage"]) for p in response.json()]

    await eventually(on_matter, lambda found: found == [(mine["photo_id"], "resolution")])
    await publish(intake.settings, envelope)  # read again (a redelivery): nothing changes
    await asyncio.sleep(0.3)
    assert await on_matter() == [(mine["photo_id"], "resolution")]
    # The others stay unattached: only their uploaders see them.
    assert (await intake.photo(other["photo_id"], "construction")).status_code == 404
    assert (await intake.photo(wrong_hash["photo_id"], "construction")).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "minqing.intake.photos"]
    assert any("uploaded by someone else" in w and issue_id in w for w in warnings)
    assert any("another SHA-256" in w for w in warnings)
    assert not any("construction" in w or "water" in w for w in warnings)  # ids only


async def test_a_revisit_read_from_the_stream_attaches_its_photos(intake: Intake) -> None:
    created = await report(intake, "reporter")
    issue_id = created.json()["issue_id"]
    seen = await intake.uploaded(who="line")
    revisit = IssueRevisitRecorded(
        outcome="passed",
        visitor="person:line",
        notes="The lamps stay lit",
        reason="score 2: dark again at night",
        due=FRIDAY_MORNING.date() + timedelta(days=7),
        within_window=True,
        assignment_no=1,
        photos=(PhotoRef(**ref(seen)),),
    )
    await publish(
        intake.settings,
        wrap(
            revisit, issue_id=issue_id, service="followup", actor="person:line", time=FRIDAY_MORNING
        ),
    )

    async def stages() -> list[tuple[str, str]]:
        response = await intake.listed(issue_id, "supervisor")
        return [(p["photo_id"], p["stage"]) for p in response.json()]

    await eventually(stages, lambda found: found == [(seen["photo_id"], "revisit")])


async def test_followup_resolution_and_lookback_carry_photos_that_intake_attaches(
    intake: Intake,
) -> None:
    """Through both services' HTTP APIs, as the pages do: upload, then name the photo."""
    async with serve(followup_app(intake.settings, clock=intake.clock)) as followup:
        created = await report(intake, "reporter")
        issue_id = created.json()["issue_id"]
        await assigned_to_unit(intake, issue_id)

        async def case() -> int:
            return (await followup.get(f"/api/v1/issues/{issue_id}/case")).status_code

        await eventually(case, lambda status: status == 200)
        fixed = await intake.uploaded(who="construction")
        resolution = {"unit": UNIT, "summary": "Lamps replaced", "photos": [ref(fixed)]}
        done = await followup.post(
            f"/api/v1/issues/{issue_id}/resolution", json=resolution, headers=AS["construction"]
        )
        assert done.status_code == 201, done.text
        seen = await intake.uploaded(JPEG, who="line")
        visit = {"outcome": "passed", "notes": "All lit", "photos": [ref(seen)]}
        looked = await followup.post(
            f"/api/v1/issues/{issue_id}/lookback", json=visit, headers=AS["line"]
        )
        assert looked.status_code == 201, looked.text
        bad = await followup.post(
            f"/api/v1/issues/{issue_id}/lookback",
            json={**visit, "photos": [{"photo_id": "x", "sha256": "y"}]},
            headers=AS["line"],
        )
        assert bad.status_code == 422

    async def stages() -> list[tuple[str, str]]:
        response = await intake.listed(issue_id, "construction")
        return [(p["photo_id"], p["stage"]) for p in response.json()]

    await eventually(
        stages,
        lambda found: found == [(fixed["photo_id"], "resolution"), (seen["photo_id"], "lookback")],
    )
    [resolved] = await events_of(intake.settings, "issue.resolved")
    assert resolved.data["photos"] == [ref(fixed)]
    [passed] = await events_of(intake.settings, "issue.lookback_passed")
    assert (passed.actor, passed.data["photos"]) == ("person:line", [ref(seen)])
    # The look-back's photo is on a matter of town_construction: its staff see it.
    assert (await intake.photo(seen["photo_id"], "construction")).content == JPEG


# ------------------------------------------------------------------------------ prune


async def test_the_retention_rule_prunes_orphans_after_a_day_and_the_rest_after_its_years(
    intake: Intake,
) -> None:
    orphan = await intake.uploaded(who="reporter")
    kept = await intake.uploaded(JPEG, who="reporter")
    created = await report(intake, "reporter", photos=[ref(kept)])
    issue_id = created.json()["issue_id"]
    rule = retention(intake.settings)

    async def prune() -> tuple[int, int]:
        pruned = await prune_photos(intake.rt.units_of_work(SqlPhotos), rule)
        return pruned.orphans, pruned.expired

    intake.clock.advance(timedelta(hours=23))
    assert await prune() == (0, 0)
    assert (await intake.photo(orphan["photo_id"], "reporter")).status_code == 200
    intake.clock.advance(timedelta(hours=1, seconds=1))  # 24 h after the upload
    assert await prune() == (1, 0)
    gone = await intake.photo(orphan["photo_id"], "reporter")
    assert gone.status_code == 410
    assert gone.json()["detail"] == (
        f"photo {orphan['photo_id']} was removed by the retention rule on 2026-11-28 01:00 UTC;"
        f" its SHA-256 was {orphan['sha256']}"
    )
    assert (await intake.photo(orphan["photo_id"], "water")).status_code == 404  # still hidden
    assert (await intake.photo(kept["photo_id"], "reporter")).content == JPEG
    assert await prune() == (0, 0)  # nothing more

    intake.clock.advance(timedelta(days=1093))
    assert await prune() == (0, 0)  # 1,094 days after the upload
    assert (await intake.photo(kept["photo_id"], "reporter")).content == JPEG
    intake.clock.advance(timedelta(days=1))
    assert await prune() == (0, 1)
    assert (await intake.photo(kept["photo_id"], "reporter")).status_code == 410
    [listed] = (await intake.listed(issue_id, "supervisor")).json()
    assert (listed["photo_id"], listed["sha256"], listed["pruned"]) == (
        kept["photo_id"],
        kept["sha256"],
        True,
    )
    async with intake.rt.sessions() as session:
        rows = (await session.execute(select(photos.c.bytes, photos.c.sha256))).all()
    assert [row.bytes for row in rows] == [None, None]  # the bytes gone, the hashes kept
    assert {row.sha256 for row in rows} == {orphan["sha256"], kept["sha256"]}

    # The same bytes uploaded again are a new photo (the pruned one stays as it is).
    again = await intake.upload(PNG, who="reporter")
    assert again.status_code == 201 and again.json()["photo_id"] != orphan["photo_id"]


def minqing(*args: str, database_url: str) -> Result:
    """The ``minqing`` command, on the database named by MINQING_DATABASE_URL."""
    return CliRunner().invoke(cli.app, list(args), env={"MINQING_DATABASE_URL": database_url})


async def test_the_prune_command_applies_the_retention_rule(settings: Settings) -> None:
    # Uploaded on a clock long past (the command runs on the wall clock, later than this
    # whatever the day the suite runs): a day-old orphan and a recent photo would differ.
    long_ago = SetClock(datetime(2020, 1, 6, 9, 0, tzinfo=UTC))
    app = create_app(settings, clock=long_ago)
    async with serve(app) as client:
        intake = Intake(client, app.state.runtime, long_ago, settings)
        old = await intake.uploaded(who="reporter")
        done = await asyncio.to_thread(
            minqing, "photos", "prune", database_url=settings.database_url
        )
        assert done.exit_code == 0, done.output
        assert done.output.strip() == (
            "1 photo(s) removed by the retention rule: 1 never attached to a matter, "
            "0 past the retention period on a matter"
        )
        assert (await intake.photo(old["photo_id"], "reporter")).status_code == 410
        again = await asyncio.to_thread(
            minqing, "photos", "prune", database_url=settings.database_url
        )
        assert again.exit_code == 0 and again.output.startswith("0 photo(s) removed")
