"""Open311 GeoReport v2 on a real running intake (uvicorn on a free port, real NATS and
PostgreSQL), read by a real Open311 client library from PyPI (``georeport``) and written
with plain form posts, as residents' apps send them (``georeport`` has no POST)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from xml.etree import ElementTree

import httpx
import pytest
import uvicorn
from georeport import GeoReport
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from minqing.services import cli
from minqing.services.intake.app import create_app
from minqing.services.intake.channels.open311.keys import create_key, revoke_key
from minqing.services.intake.channels.open311.tables import api_keys, media, requests
from minqing.services.intake.store import reporter_contacts, reports
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import IssueLookbackPassed
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.infra import free_port
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings
from tests.support.clock import SetClock
from tests.support.events import FRIDAY_MORNING, assigned, envelope, publish
from tests.support.harness import eventually, isolated_settings, stream_messages
from tests.support.identity import DESK, enrol

T = TypeVar("T")
# Residents post the day before the matter is assigned and closed (the events in
# tests.support.events are stamped FRIDAY_MORNING): intake runs on this clock, never the
# wall clock, so what the requests show does not depend on the day the suite runs.
THURSDAY_MORNING = FRIDAY_MORNING - timedelta(days=1)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

POTHOLE = {
    "service_code": "102",
    "attribute[village]": "Sanqi Village",
    "description": "Deep pothole by the school gate\nCars swerve into the bike lane.",
    "lat": "31.30",
    "long": "120.40",
    "first_name": "Wang",
    "last_name": "Wu",
    "phone": "+86 139 1234 5678",
    "email": "wang.wu@example.cn",
    "jurisdiction_id": "",  # clients send it empty: the same as absent
}


@dataclass
class Open311:
    base: str  # http://127.0.0.1:<port>/open311/v2
    http: httpx.AsyncClient
    rt: Runtime
    settings: Settings
    key: str
    clock: SetClock

    def library(self, fmt: str = "json") -> GeoReport:
        return GeoReport(self.base, output_format=fmt)

    async def post(self, fmt: str = "json", **fields: Any) -> httpx.Response:
        data = {**POTHOLE, "api_key": self.key, **fields}
        return await self.http.post(f"{self.base}/requests.{fmt}", data=data)


async def call(fn: Callable[[], T]) -> T:
    """A blocking client library call, off the event loop the server runs on."""
    return await asyncio.to_thread(fn)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, clock: SetClock | None = None
) -> AsyncIterator[tuple[str, Runtime]]:
    """Intake served by uvicorn on a free port, on this event loop, on a test clock
    (Thursday morning unless given)."""
    app = create_app(settings, clock=clock or SetClock(THURSDAY_MORNING))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        await enrol(app.state.runtime.sessions)
        yield f"http://127.0.0.1:{port}", app.state.runtime
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def open311(settings: Settings) -> AsyncIterator[Open311]:
    engine = make_engine(settings.database_url, settings)
    try:
        created = await create_key(engine, "town-app", "online", datetime.now(UTC))
    finally:
        await engine.dispose()
    clock = SetClock(THURSDAY_MORNING)
    async with (
        running(settings, clock) as (url, rt),
        httpx.AsyncClient(timeout=10, headers=DESK) as http,
    ):
        yield Open311(f"{url}/open311/v2", http, rt, settings, created.key, clock)


def xml(response: httpx.Response) -> ElementTree.Element:
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ElementTree.fromstring(response.content)


def errors(response: httpx.Response) -> list[tuple[int, str]]:
    if response.headers["content-type"].startswith("text/xml"):
        root = xml(response)
        assert root.tag == "errors"
        return [(int(e.findtext("code") or 0), e.findtext("description") or "") for e in root]
    return [(e["code"], e["description"]) for e in response.json()]


# ------------------------------------------------------------------------------ services


async def test_the_library_lists_the_catalogue_and_its_attributes_in_json_and_xml(
    open311: Open311,
) -> None:
    services = await call(open311.library("json").get_service_list)
    by_code = {s["service_code"]: s for s in services}
    assert by_code["101"] == {
        "service_code": "101",
        "service_name": "路灯 Street lights",
        "description": "A street light is out, broken or missing.",
        "metadata": True,
        "type": "realtime",
        "keywords": "路灯, 路灯不亮, street light, streetlight, lights",
        "group": "民生实事 Practical livelihood matters",
    }
    assert {"102", "201", "301", "401"} <= set(by_code)

    in_xml = await call(open311.library("xml").get_service_list)
    assert [s["service_code"] for s in in_xml] == [s["service_code"] for s in services]
    assert in_xml[0]["metadata"] == "true"

    definition = await call(lambda: open311.library("json").get_service_definition("102"))
    village, title = definition["attributes"]
    assert (village["code"], village["datatype"], village["required"]) == (
        "village",
        "singlevaluelist",
        True,
    )
    assert {"key": "sanqi", "name": "三岐村 Sanqi Village"} in village["values"]
    assert (title["code"], title["required"]) == ("title", False)
    as_xml = await call(lambda: open311.library("xml").get_service_definition("102"))
    assert as_xml["attributes"]["attribute"][0]["values"]["value"][1]["key"] == "sanqi"

    unknown = await open311.http.get(f"{open311.base}/services/555.xml")
    assert unknown.status_code == 404
    assert "service_code '555' not found" in errors(unknown)[0][1]
    other_town = await open311.http.get(f"{open311.base}/services.json?jurisdiction_id=sf.gov")
    assert other_town.status_code == 404
    assert errors(other_town)[0][0] == 404


async def test_discovery_names_the_endpoint_and_its_formats(open311: Open311) -> None:
    found = (await open311.http.get(f"{open311.base}/discovery.json")).json()
    [endpoint] = found["endpoints"]
    assert endpoint["url"] == open311.base
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["formats"] == ["application/json", "text/xml"]
    root = xml(await open311.http.get(f"{open311.base}/discovery.xml"))
    assert [f.text for f in root.iter("format")] == ["application/json", "text/xml"]


# ------------------------------------------------------------------------------ requests


async def test_a_posted_request_becomes_a_matter_the_library_reads_back(
    open311: Open311,
) -> None:
    response = await open311.post("xml")
    assert response.status_code == 200, response.text
    [created] = xml(response)
    request_id = created.findtext("service_request_id")
    assert request_id and "Town Construction Office" in (created.findtext("service_notice") or "")

    # The matter is on the list as an ordinary report from the online channel.
    [message] = await eventually(lambda: stream_messages(open311.settings), lambda m: len(m) == 1)
    event = Envelope.model_validate_json(message.data)
    assert event.subject == request_id
    assert (event.data["category"], event.data["village"], event.data["source"]) == (
        "roads",
        "sanqi",
        "online",
    )
    assert event.data["title"] == "Deep pothole by the school gate"
    assert event.data["reporter_phone_masked"] == "139****5678"
    for secret in (b"Wang", b"1234 5678", b"12345678", b"wang.wu@"):
        assert secret not in message.data

    one = await call(lambda: open311.library("json").get_service_request(request_id))
    assert one["service_request_id"] == request_id
    assert (one["status"], one["service_code"], one["service_name"]) == (
        "open",
        "102",
        "道路 Roads",
    )
    assert (one["lat"], one["long"]) == (31.3, 120.4)
    assert one["description"] == POTHOLE["description"]
    assert one["requested_datetime"].endswith("+08:00")
    assert not {"first_name", "last_name", "phone", "email"} & set(one)
    assert "Wang" not in json.dumps(one) and "5678" not in json.dumps(one)

    listed = await call(lambda: open311.library("xml").get_service_requests(status="open"))
    # xmltodict: one <request> is a dict, not a list
    assert listed["service_request_id"] == request_id and listed["status"] == "open"
    token = (await open311.http.get(f"{open311.base}/tokens/{request_id}.json")).json()
    assert token == [{"service_request_id": request_id, "token": request_id}]


async def test_status_agency_and_deadline_follow_the_matter(open311: Open311) -> None:
    request_id = (await open311.post()).json()[0]["service_request_id"]
    await publish(open311.settings, assigned(request_id, unit="town_construction"))

    def library() -> dict[str, Any]:
        return dict(open311.library("json").get_service_request(request_id))

    async def probe() -> dict[str, Any]:
        return await call(library)

    now = await eventually(probe, lambda r: r["agency_responsible"] is not None)
    assert now["status"] == "open"
    assert now["agency_responsible"] == "建设管理所 Town Construction Office"
    assert now["expected_datetime"] == "2026-12-18T23:59:59+08:00"
    assert now["requested_datetime"] == "2026-11-26T09:00:00+08:00"  # intake's clock
    assert now["updated_datetime"] == "2026-11-27T09:00:00+08:00"  # the assignment's time
    # In Chinese, the unit by name (never its code), the deadline and how it was counted.
    assert now["status_notes"].startswith("已交由建设管理所办理，办结期限 2026-12-18（")
    assert "town_construction" not in now["status_notes"]

    passed = IssueLookbackPassed(
        visitor="cadre-liu",
        notes="the road is patched",
        assignment_no=1,
        lookback_due=date(2026, 12, 30),
        within_window=True,
    )
    await publish(
        open311.settings, envelope(passed, request_id, actor="service:followup", service="x")
    )
    closed = await eventually(probe, lambda r: r["status"] == "closed")
    assert closed["status_notes"] == "已闭环：回访核实问题已解决（the road is patched）"
    assert closed["updated_datetime"] == "2026-11-27T09:00:00+08:00"

    lists = open311.library("json")
    closed_roads = await call(
        lambda: lists.get_service_requests(status="closed", service_code="101,102")
    )
    assert [r["service_request_id"] for r in closed_roads] == [request_id]
    assert await call(lambda: lists.get_service_requests(status="open")) == []
    assert await call(lambda: lists.get_service_requests(service_code="101")) == []


async def test_filters_by_id_window_and_count(open311: Open311) -> None:
    ids = []
    for _ in range(3):
        ids.append((await open311.post()).json()[0]["service_request_id"])
        open311.clock.advance(timedelta(minutes=1))
    get = open311.http.get
    by_id = await get(f"{open311.base}/requests.json", params={"service_request_id": ids[0]})
    assert [r["service_request_id"] for r in by_id.json()] == [ids[0]]
    both = await get(f"{open311.base}/requests.json?service_request_id={ids[2]},{ids[0]}")
    assert {r["service_request_id"] for r in both.json()} == {ids[0], ids[2]}
    newest_first = (await get(f"{open311.base}/requests.json")).json()
    assert [r["service_request_id"] for r in newest_first] == ids[::-1]

    past = {"start_date": "2020-01-01T00:00:00Z", "end_date": "2020-03-01T00:00:00+08:00"}
    assert (await get(f"{open311.base}/requests.json", params=past)).json() == []
    too_wide = {"start_date": "2020-01-01T00:00:00Z", "end_date": "2020-06-01T00:00:00Z"}
    wide = await get(f"{open311.base}/requests.json", params=too_wide)
    assert wide.status_code == 400
    assert errors(wide) == [(400, "start_date to end_date may not span more than 90 days")]
    naive = await get(f"{open311.base}/requests.xml", params={"start_date": "2026-01-01"})
    assert naive.status_code == 400 and "w3 format" in errors(naive)[0][1]
    missing = await get(f"{open311.base}/requests/01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6.xml")
    assert missing.status_code == 404 and errors(missing)[0][0] == 404
    assert (await get(f"{open311.base}/requests/nonsense.json")).status_code == 404
    assert (await get(f"{open311.base}/tokens/nonsense.json")).status_code == 404


# ------------------------------------------------------------------- keys and bad input


def minqing(*args: str, database_url: str) -> Result:
    """The ``minqing`` command, on the database named by MINQING_DATABASE_URL."""
    return CliRunner().invoke(cli.app, list(args), env={"MINQING_DATABASE_URL": database_url})


async def test_a_key_from_the_command_works_until_it_is_revoked(open311: Open311) -> None:
    url = open311.settings.database_url
    created = await asyncio.to_thread(
        minqing,
        "open311-key",
        "create",
        "Village app",
        "--source",
        "grid_center",
        database_url=url,
    )
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("o311_") and len(key) > 40
    async with open311.rt.sessions() as session:
        stored = list(await session.scalars(select(api_keys.c.key_hash)))
    assert key not in stored and hashlib.sha256(key.encode()).hexdigest() in stored

    response = await open311.post(api_key=key)
    assert response.status_code == 200, response.text
    [message] = await eventually(lambda: stream_messages(open311.settings), lambda m: len(m) == 1)
    assert Envelope.model_validate_json(message.data).data["source"] == "grid_center"

    again = await asyncio.to_thread(
        minqing, "open311-key", "create", "Village app", database_url=url
    )
    assert again.exit_code == 1 and "exists already" in again.output
    revoked = await asyncio.to_thread(
        minqing, "open311-key", "revoke", "Village app", database_url=url
    )
    assert revoked.exit_code == 0, revoked.output
    listed = await asyncio.to_thread(minqing, "open311-key", "list", database_url=url)
    rows = dict(line.split("\t", 1) for line in listed.output.strip().splitlines())
    assert rows["town-app"].endswith("active")
    assert "grid_center" in rows["Village app"] and "revoked" in rows["Village app"]
    assert key not in listed.output
    assert (await open311.post(api_key=key)).status_code == 403


async def test_creating_a_request_needs_a_valid_unrevoked_api_key(open311: Open311) -> None:
    missing = await open311.post("json", api_key="")
    assert (missing.status_code, errors(missing)[0][0]) == (403, 403)
    wrong = await open311.post("xml", api_key="o311_guessed")
    assert wrong.status_code == 403
    assert errors(wrong) == [(403, "invalid api_key: unknown or revoked")]
    # The key may come in the query string too.
    query = await open311.http.post(
        f"{open311.base}/requests.json?api_key={open311.key}",
        data={k: v for k, v in POTHOLE.items()},
    )
    assert query.status_code == 200, query.text

    engine = make_engine(open311.settings.database_url, open311.settings)
    try:
        await revoke_key(engine, "town-app", datetime.now(UTC))
    finally:
        await engine.dispose()
    revoked = await open311.post()
    assert revoked.status_code == 403
    assert await counts(open311) == (1, 1, 0)


async def test_bad_fields_are_all_named_in_the_spec_format_and_nothing_is_stored(
    open311: Open311,
) -> None:
    bad = await open311.post(
        "xml",
        **{
            "attribute[village]": "",
            "lat": "95",
            "long": "",
            "phone": "call me",
            "email": "nobody",
            "description": "x" * 4001,
            "media_url": "javascript:alert(1)",
        },
    )
    assert bad.status_code == 400
    described = [text for code, text in errors(bad) if code == 400]
    fields = {text.split(":")[0] for text in described}
    assert fields == {
        "attribute[village]",
        "lat",
        "phone",
        "email",
        "description",
        "media_url",
        "lat and long must be sent together",  # long was empty
    }, described
    nowhere = await open311.post(lat="", long="", address_string="", **{"attribute[village]": ""})
    assert nowhere.status_code == 400
    assert [text.split(":")[0] for _, text in errors(nowhere)] == [
        "attribute[village]",
        "a location is required",
    ]
    unknown_village = await open311.post(**{"attribute[village]": "Atlantis"})
    assert unknown_village.status_code == 400 and "sanqi" in errors(unknown_village)[0][1]
    unknown_service = await open311.post(service_code="555")
    assert unknown_service.status_code == 404
    bad_format = await open311.http.get(f"{open311.base}/services.csv")
    assert bad_format.status_code == 400 and "use .json or .xml" in errors(bad_format)[0][1]
    wrong_method = await open311.http.delete(f"{open311.base}/services.json")
    assert wrong_method.status_code == 405 and errors(wrong_method)[0][0] == 405
    no_route = await open311.http.get(f"{open311.base}/nothing/here.xml")
    assert no_route.status_code == 404 and xml(no_route).tag == "errors"
    assert await counts(open311) == (0, 0, 0)


async def test_a_retry_with_the_same_idempotency_key_gets_the_same_request(
    open311: Open311,
) -> None:
    url, data = f"{open311.base}/requests.json", {**POTHOLE, "api_key": open311.key}
    headers = {"Idempotency-Key": "app-42-send-1"}
    first = await open311.http.post(url, data=data, headers=headers)
    again = await open311.http.post(url, data=data, headers=headers)
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()[0]["service_request_id"] == again.json()[0]["service_request_id"]
    changed = await open311.http.post(url, data={**data, "lat": "31.31"}, headers=headers)
    assert changed.status_code == 409 and errors(changed)[0][0] == 409
    # Another app's keys are its own, though both report as `online`.
    engine = make_engine(open311.settings.database_url, open311.settings)
    try:
        other = (await create_key(engine, "other-app", "online", datetime.now(UTC))).key
    finally:
        await engine.dispose()
    theirs = await open311.http.post(url, data={**data, "api_key": other}, headers=headers)
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()[0]["service_request_id"] != first.json()[0]["service_request_id"]
    long_form = await open311.http.post(url, data={**data, "description": "x" * 70_000})
    assert long_form.status_code == 413 and "limited to" in errors(long_form)[0][1]
    assert await counts(open311) == (2, 2, 0)


# ------------------------------------------------------------------------------- media


async def test_a_photo_sent_as_multipart_is_stored_and_served_back(open311: Open311) -> None:
    fields = {**POTHOLE, "api_key": open311.key, "address_string": "School Road 1"}
    fields.pop("lat"), fields.pop("long")
    response = await open311.http.post(
        f"{open311.base}/requests.json",
        data=fields,
        files={"media": ("pothole.png", PNG, "image/png")},
    )
    assert response.status_code == 200, response.text
    request_id = response.json()[0]["service_request_id"]
    shown = await call(lambda: open311.library().get_service_request(request_id))
    assert shown["address"] == "School Road 1" and shown["lat"] is None
    assert shown["media_url"].startswith(f"{open311.base}/media/")
    photo = await open311.http.get(shown["media_url"])
    assert (photo.status_code, photo.content) == (200, PNG)
    assert photo.headers["content-type"] == "image/png"
    assert photo.headers["x-content-type-options"] == "nosniff"

    linked = await open311.post(media_url="https://photos.example.cn/p/1.jpg")
    linked_id = linked.json()[0]["service_request_id"]
    shown = await call(lambda: open311.library().get_service_request(linked_id))
    assert shown["media_url"] == "https://photos.example.cn/p/1.jpg"

    empty = await open311.http.post(
        f"{open311.base}/requests.json",
        data=fields,
        files={"media": ("", b"", "application/octet-stream")},  # a file input left empty
    )
    assert empty.status_code == 200, empty.text
    svg = await open311.http.post(
        f"{open311.base}/requests.json",
        data=fields,
        files={"media": ("x.svg", b"<svg/>", "image/svg+xml")},
    )
    assert svg.status_code == 400 and "not accepted" in errors(svg)[0][1]
    for name, content, declared in [
        ("page.png", b"<html><script>alert(1)</script></html>", "image/png"),
        ("renamed.jpg", PNG, "image/jpeg"),
    ]:
        posing = await open311.http.post(
            f"{open311.base}/requests.xml",
            data=fields,
            files={"media": (name, content, declared)},
        )
        assert posing.status_code == 400, posing.text
        [(code, description)] = errors(posing)  # the spec's format, as the path asks (XML)
        assert code == 400 and description.startswith(f"media: declared {declared}, but")
    assert "the bytes are image/png" in description
    assert await counts(open311) == (3, 3, 1)


async def new_key(settings: Settings) -> str:
    engine = make_engine(settings.database_url, settings)
    try:
        return (await create_key(engine, "app", "online", datetime.now(UTC))).key
    finally:
        await engine.dispose()


async def test_a_second_report_of_the_same_problem_joins_the_first_matter(
    nats_url: str, database_url: str
) -> None:
    settings = isolated_settings(nats_url, database_url, duplicate_threshold=80)
    key = await new_key(settings)
    async with running(settings) as (url, _), httpx.AsyncClient(timeout=10, headers=DESK) as http:
        posts = [
            await http.post(f"{url}/open311/v2/requests.json", data={**POTHOLE, "api_key": key})
            for _ in range(2)
        ]
        first, second = (p.json()[0] for p in posts)
        assert "Already reported as service request" not in first["service_notice"]
        assert second["service_notice"].startswith(
            f"Already reported as service request {first['service_request_id']}"
        )
        shown = GeoReport(f"{url}/open311/v2").get_service_request
        joined = await call(lambda: shown(second["service_request_id"]))
    assert joined["status_notes"] == (
        f"已并入服务请求 {first['service_request_id']}（同一事项）。已受理，等待交办"
    )


async def test_a_body_over_the_upload_limit_is_a_413_in_the_spec_format(
    nats_url: str, database_url: str
) -> None:
    settings = isolated_settings(nats_url, database_url, max_upload_bytes=4096)
    key = await new_key(settings)
    async with running(settings) as (url, _), httpx.AsyncClient(timeout=10, headers=DESK) as http:
        big = await http.post(
            f"{url}/open311/v2/requests.xml",
            data={**POTHOLE, "api_key": key},
            files={"media": ("big.png", PNG + b"\x00" * 5000, "image/png")},
        )
        assert big.status_code == 413
        [(code, _text)] = errors(big)
        assert code == 413
        # Other paths keep the small JSON limit (64 KiB by default: here too).
        report = await http.post(f"{url}/api/v1/reports", content=b"x" * 70_000)
        assert report.status_code == 413


async def counts(open311: Open311) -> tuple[int, int, int]:
    """Reports, Open311 requests and stored photos in intake's tables."""
    async with open311.rt.sessions() as session:
        values = [
            await session.scalar(select(func.count()).select_from(table))
            for table in (reports, requests, media)
        ]
        contacts = await session.scalar(select(func.count()).select_from(reporter_contacts))
    assert contacts == values[0]  # every request here names its reporter
    return (int(values[0] or 0), int(values[1] or 0), int(values[2] or 0))


async def test_a_listing_shows_only_public_channels_and_categories(open311: Open311) -> None:
    api = open311.base.removesuffix("/open311/v2") + "/api/v1/reports"
    base = {"description": "d", "village": "sanqi", "reporter": {"name": "Li Si"}}
    private_channel = {
        **base,
        "title": "信访: 路面塌陷",
        "category": "roads",
        "source": "letters_visits",
    }
    private_matter = {
        **base,
        "title": "邻居养羊",
        "category": "neighbour_dispute",
        "source": "hotline_12345",
    }
    public = {**base, "title": "路灯不亮", "category": "street_lights", "source": "hotline_12345"}
    ids = []
    for body in (private_channel, private_matter, public):
        response = await open311.http.post(api, json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["report_id"])

    listed = (await open311.http.get(f"{open311.base}/requests.json")).json()

    assert [r["service_request_id"] for r in listed] == [ids[2]]
    for request_id in ids:  # a lookup by its (unguessable) id still answers
        one = await open311.http.get(f"{open311.base}/requests/{request_id}.json")
        assert one.status_code == 200
