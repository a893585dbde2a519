"""Intake over HTTP: what is accepted reaches the stream; what is bad is refused whole."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from minqing.services.intake.app import create_app
from minqing.services.intake.store import plumbing, reporter_contacts, reports
from minqing.shared.contract.envelope import Envelope
from minqing.shared.messaging.streams import UnsupportedServer, check_server
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.infra import free_port
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, serve, serve_over_http, stream_messages

REPORT = {
    "title": "Dangerous bridge over the East and West River",
    "description": "The railing is gone and the deck is cracked.",
    "category": "bridges",
    "village": "sanqi",
    "source": "visit",
    "reporter": {"name": "Wang Wu", "phone": "+86 139 1234 5678"},
    "location": {"address": "Sanqi Village, east bank"},
    "recorded_by": "cadre-liu",
}


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    app = create_app(settings)
    async with serve(app) as client:
        yield client, app.state.runtime


async def stored(rt: Runtime) -> tuple[int, int, int]:
    async with rt.sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(t))
            for t in (reports, reporter_contacts, plumbing.outbox)
        ]
    return (int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0))


async def test_a_report_is_published_as_a_cloudevent_without_the_phone_number(
    intake: tuple[httpx.AsyncClient, Runtime], settings: Settings
) -> None:
    client, _ = intake
    response = await client.post("/api/v1/reports", json=REPORT)
    assert response.status_code == 201, response.text
    body = response.json()

    [message] = await eventually(lambda: stream_messages(settings), lambda m: len(m) == 1)
    assert message.subject == f"{settings.subject_prefix}.issue.reported"
    assert message.headers is not None
    assert message.headers["Nats-Msg-Id"] == body["event_id"]
    assert b"Wang Wu" not in message.data
    assert b"13912345678" not in message.data and b"139 1234 5678" not in message.data
    event = Envelope.model_validate_json(message.data)
    assert event.data["reporter_phone_masked"] == "139****5678"
    assert event.id == body["event_id"]
    assert event.subject == body["issue_id"]
    assert event.type == "minqing.issue.reported"
    assert event.source == "/minqing/intake"
    assert (event.actor, event.data["on_behalf_of"]) == ("person:desk", "cadre-liu")
    assert event.data["category"] == "bridges"
    assert event.data["reporter_ref"].startswith("rpt_")


async def test_bad_input_names_every_bad_field_and_stores_nothing(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = intake
    bad = {
        **REPORT,
        "title": "   ",
        "category": "bridgework",
        "village": "atlantis",
        "source": "fax",
        "reporter": {"phone": "call me"},
        "location": {"lat": 95, "lon": 119},
        "colour": "red",
    }
    response = await client.post("/api/v1/reports", json=bad)
    assert response.status_code == 422
    errors = {tuple(e["loc"][1:]): e["msg"] for e in response.json()["detail"]}
    assert set(errors) == {
        ("title",),
        ("category",),
        ("village",),
        ("source",),
        ("reporter", "phone"),
        ("location", "lat"),
        ("colour",),
    }
    assert "valid codes: street_lights, roads, bridges" in errors[("category",)]
    assert "sanqi" in errors[("village",)]
    assert "hotline_12345" in errors[("source",)]
    assert await stored(rt) == (0, 0, 0)


async def test_missing_fields_and_non_json_bodies_are_refused(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = intake
    missing = await client.post("/api/v1/reports", json={"title": "Only a title"})
    assert missing.status_code == 422
    named = {e["loc"][-1] for e in missing.json()["detail"]}
    assert named == {"description", "category", "village", "source"}
    garbage = await client.post(
        "/api/v1/reports", content=b"not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422
    assert await stored(rt) == (0, 0, 0)


async def test_a_retry_with_the_same_idempotency_key_gets_the_same_matter(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = intake
    headers = {"Idempotency-Key": "12345-ticket-20261125-0042"}
    first = await client.post("/api/v1/reports", json=REPORT, headers=headers)
    again = await client.post("/api/v1/reports", json=REPORT, headers=headers)
    reformatted = await client.post(
        "/api/v1/reports",
        content=json.dumps(REPORT, indent=2, ensure_ascii=False),
        headers={**headers, "content-type": "application/json"},
    )
    assert (first.status_code, again.status_code, reformatted.status_code) == (201, 200, 200)
    assert again.json() == first.json() == reformatted.json()
    assert await stored(rt) == (1, 1, 1)
    changed = await client.post(
        "/api/v1/reports", json={**REPORT, "title": "Another matter"}, headers=headers
    )
    assert changed.status_code == 409
    assert "different request" in changed.json()["detail"]


async def test_an_idempotency_key_belongs_to_the_source_that_sent_it(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = intake
    headers = {"Idempotency-Key": "ticket-0042"}
    hotline = {**REPORT, "source": "hotline_12345"}
    grid = {**REPORT, "source": "grid_center"}
    first = await client.post("/api/v1/reports", json=hotline, headers=headers)
    other = await client.post("/api/v1/reports", json=grid, headers=headers)
    assert (first.status_code, other.status_code) == (201, 201), other.text
    assert first.json()["report_id"] != other.json()["report_id"]

    retry = await client.post("/api/v1/reports", json=grid, headers=headers)
    assert (retry.status_code, retry.json()) == (200, other.json())
    changed = await client.post(
        "/api/v1/reports", json={**grid, "title": "Another matter"}, headers=headers
    )
    assert changed.status_code == 409
    assert await stored(rt) == (2, 2, 2)


async def test_reports_racing_with_one_idempotency_key_make_one_matter(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with serve_over_http(app) as client:
        headers = {"Idempotency-Key": "ticket-race-1"}
        answers = await asyncio.gather(
            *(client.post("/api/v1/reports", json=REPORT, headers=headers) for _ in range(48))
        )
        codes = Counter(a.status_code for a in answers)
        assert codes == {201: 1, 200: 47}, [a.text for a in answers if a.status_code >= 500][:1]
        assert len({a.text for a in answers}) == 1  # the same matter, report and event
        assert await stored(app.state.runtime) == (1, 1, 1)


async def test_reports_racing_with_one_idempotency_key_and_two_bodies_get_409_or_the_winner(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with serve_over_http(app) as client:
        headers = {"Idempotency-Key": "ticket-race-2"}
        bodies = [REPORT, {**REPORT, "title": "Another matter"}] * 24
        answers = await asyncio.gather(
            *(client.post("/api/v1/reports", json=b, headers=headers) for b in bodies)
        )
        codes = Counter(a.status_code for a in answers)
        assert codes == {201: 1, 200: 23, 409: 24}, codes
        sent = list(zip(bodies, answers, strict=True))
        [winner] = [body for body, answer in sent if answer.status_code == 201]
        assert all((answer.status_code == 409) == (body is not winner) for body, answer in sent)
        assert len({a.text for a in answers if a.status_code != 409}) == 1
        assert await stored(app.state.runtime) == (1, 1, 1)


async def test_an_anonymous_report_has_no_reporter_reference(
    intake: tuple[httpx.AsyncClient, Runtime], settings: Settings
) -> None:
    client, rt = intake
    anonymous = {k: v for k, v in REPORT.items() if k not in ("reporter", "recorded_by")}
    assert (await client.post("/api/v1/reports", json=anonymous)).status_code == 201
    [message] = await eventually(lambda: stream_messages(settings), lambda m: len(m) == 1)
    event = Envelope.model_validate_json(message.data)
    assert "reporter_ref" not in event.data or event.data["reporter_ref"] is None
    assert event.actor == "person:desk"  # the caller, whatever the channel
    assert await stored(rt) == (1, 0, 1)


async def test_reference_codes_are_published_for_clients(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = intake
    reference = (await client.get("/api/v1/reference")).json()
    assert "street_lights" in reference["categories"]
    assert {"shihu", "sanqi", "qizhuang", "xuma", "sixing"} <= set(reference["villages"])
    assert "hotline_12345" in reference["sources"]
    assert "sanqi_branch" in reference["units"]


async def test_health_and_readiness_report_their_connections(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = intake
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "service": "intake",
        "database": "ok",
        "nats": "ok",
        "consumer intake-status": "ok",
        "consumer intake-ingress": "ok",
        "consumer intake-replies": "ok",
    }


async def test_a_database_outage_is_a_503_to_retry_and_records_nothing(
    intake: tuple[httpx.AsyncClient, Runtime], settings: Settings
) -> None:
    client, rt = intake
    unreachable = make_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", settings
    )
    rt.sessions.configure(bind=unreachable)
    try:
        response = await client.post("/api/v1/reports", json=REPORT)
    finally:
        rt.sessions.configure(bind=rt.engine)
        await unreachable.dispose()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "retry" in response.json()["detail"]
    assert await stored(rt) == (0, 0, 0)
    assert (await client.post("/api/v1/reports", json=REPORT)).status_code == 201


async def test_a_nats_server_older_than_2_10_is_refused_with_a_reason(
    settings: Settings,
) -> None:
    app = create_app(settings)
    rt: Runtime = app.state.runtime
    await rt.broker.connect()
    try:
        server = rt.broker.connection._current_server
        assert server is not None
        server.server_version = "2.9.10"  # as Debian 12's nats-server reports itself
        with pytest.raises(UnsupportedServer, match=r"2\.9\.10 is too old: 2\.10 or newer"):
            check_server(rt.broker.connection)
    finally:
        await rt.broker.stop()
        await rt.engine.dispose()


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        (("location", "address"), "路" * 500, True),
        (("location", "address"), "路" * 501, False),
        (("title",), "灯" * 200, True),
        (("title",), "灯" * 201, False),
        (("external_ref",), "R" * 200, True),
        (("external_ref",), "R" * 201, False),
    ],
    ids=["address-500", "address-501", "title-200", "title-201", "ref-200", "ref-201"],
)
async def test_field_lengths_are_the_documented_ones(
    intake: tuple[httpx.AsyncClient, Runtime], field: tuple[str, ...], value: str, accepted: bool
) -> None:
    client, _ = intake
    body = json.loads(json.dumps(REPORT))
    target = body
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value

    response = await client.post("/api/v1/reports", json=body)

    assert response.status_code == (201 if accepted else 422), response.text


async def test_a_report_may_say_its_scale(
    intake: tuple[httpx.AsyncClient, Runtime], settings: Settings
) -> None:
    client, _ = intake
    small = await client.post("/api/v1/reports", json={**REPORT, "scale": "small"})
    huge = await client.post("/api/v1/reports", json={**REPORT, "title": "x", "scale": "huge"})

    assert (small.status_code, huge.status_code) == (201, 422)
    [message] = await eventually(lambda: stream_messages(settings), lambda m: len(m) == 1)
    assert json.loads(message.data)["data"]["scale"] == "small"
