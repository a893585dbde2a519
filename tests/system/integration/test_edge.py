"""The HTTP edge: client errors are 4xx, error bodies stay small, bodies are bounded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from minqing.services.followup.app import create_app as create_followup
from minqing.services.intake.app import create_app as create_intake
from minqing.services.intake.store import plumbing, reports
from minqing.services.projection.app import create_app as create_projection
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.policy import Entry, Router, matrix
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings
from tests.support.harness import serve
from tests.support.identity import AS

REPORT: dict[str, Any] = {
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps between the school and the market are dark.",
    "category": "street_lights",
    "village": "shihu",
    "source": "grid_center",
    "reporter": {"name": "Zhang San", "phone": "13800001234"},
    "location": {"address": "Shiguan Road", "lat": 33.51, "lon": 119.21},
    "recorded_by": "cadre-liu",
}
CONTROLS = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f", "\x85"]


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    app = create_intake(settings)
    async with serve(app) as client:
        yield client, app.state.runtime


@pytest.fixture
async def followup(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_followup(settings)) as client:
        yield client


@pytest.fixture
async def projection(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_projection(settings)) as client:
        yield client


async def stored_reports(rt: Runtime) -> tuple[int, int]:
    async with rt.sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(t))
            for t in (reports, plumbing.outbox)
        ]
    return int(counts[0] or 0), int(counts[1] or 0)


def with_field(body: dict[str, Any], path: tuple[str, ...], value: str) -> dict[str, Any]:
    """A deep copy of ``body`` with the field at ``path`` set to ``value``."""
    copy: dict[str, Any] = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def assert_small_error(response: httpx.Response, status: int) -> list[dict[str, Any]]:
    """A client error: the status, valid JSON, no echoed input, a small body."""
    assert response.status_code == status, response.text
    assert len(response.content) < 4096, response.content[:200]
    detail = response.json()["detail"]
    if isinstance(detail, list):
        for error in detail:
            assert set(error) == {"loc", "msg", "type"}, error
    return detail if isinstance(detail, list) else []


INTAKE_TEXT_FIELDS = [
    ("title",),
    ("description",),
    ("reporter", "name"),
    ("location", "address"),
    ("recorded_by",),
]


@pytest.mark.parametrize("path", INTAKE_TEXT_FIELDS, ids=".".join)
async def test_control_characters_in_report_fields_are_refused_and_nothing_is_stored(
    intake: tuple[httpx.AsyncClient, Runtime], path: tuple[str, ...]
) -> None:
    client, rt = intake
    for char in CONTROLS:
        body = with_field(REPORT, path, f"Shiguan{char}Road")
        response = await client.post("/api/v1/reports", json=body)
        errors = assert_small_error(response, 422)
        assert [tuple(e["loc"][1:]) for e in errors] == [path], (char, errors)
        assert "control character" in errors[0]["msg"]
    assert await stored_reports(rt) == (0, 0)


async def test_newlines_carriage_returns_and_tabs_are_kept_in_text(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = intake
    body = {**REPORT, "description": "Six lamps are dark.\r\nThe school\tand the market."}
    assert (await client.post("/api/v1/reports", json=body)).status_code == 201
    async with rt.sessions() as session:
        description = await session.scalar(select(reports.c.description))
    assert description == "Six lamps are dark.\r\nThe school\tand the market."


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Correlation-ID"])
async def test_control_characters_in_intake_headers_are_refused(
    intake: tuple[httpx.AsyncClient, Runtime], header: str
) -> None:
    client, rt = intake
    for char in ("\x00", "\x01", "\x1b", "\x7f"):
        response = await client.post(
            "/api/v1/reports", json=REPORT, headers={header: f"key{char}42".encode("latin-1")}
        )
        errors = assert_small_error(response, 422)
        assert errors[0]["loc"] == ["header", header.lower()], errors
    assert await stored_reports(rt) == (0, 0)


@pytest.mark.parametrize(
    ("step", "body", "field"),
    [
        ("resolution", {"unit": "town_construction", "summary": "Lamps replaced"}, "summary"),
        ("resolution", {"unit": "town_construction", "summary": "Lamps replaced"}, "unit"),
        (
            "resolution",
            {"unit": "town_construction", "summary": "Lamps replaced", "resolved_by": "wu"},
            "resolved_by",
        ),
        ("lookback", {"outcome": "passed", "visitor": "grid-worker-7"}, "visitor"),
        ("lookback", {"outcome": "failed", "visitor": "v", "notes": "still dark"}, "notes"),
    ],
)
async def test_control_characters_in_followup_fields_are_refused(
    followup: httpx.AsyncClient, step: str, body: dict[str, str], field: str
) -> None:
    for char in ("\x00", "\x01", "\x1b"):
        bad = {**body, field: f"{body[field]}{char}x"}
        as_ = AS["line"] if step == "lookback" else None
        response = await followup.post(f"/api/v1/issues/{new_id()}/{step}", json=bad, headers=as_)
        errors = assert_small_error(response, 422)
        assert [e["loc"] for e in errors] == [["body", field]], errors


@pytest.mark.parametrize(
    "raw",
    [
        b'"lat": NaN, "lon": 119.21',
        b'"lat": Infinity, "lon": 119.21',
        b'"lat": 33.5, "lon": -Infinity',
        b'"lat": true, "lon": 119.21',
        b'"lat": "33.5", "lon": 119.21',
    ],
    ids=["nan", "infinity", "minus-infinity", "bool", "string"],
)
async def test_coordinates_must_be_finite_numbers(
    intake: tuple[httpx.AsyncClient, Runtime], raw: bytes
) -> None:
    client, rt = intake
    body = json.dumps({k: v for k, v in REPORT.items() if k != "location"}).encode()
    content = body[:-1] + b', "location": {' + raw + b"}}"
    response = await client.post(
        "/api/v1/reports", content=content, headers={"content-type": "application/json"}
    )
    errors = assert_small_error(response, 422)
    assert errors and errors[0]["loc"][:2] == ["body", "location"], errors
    assert await stored_reports(rt) == (0, 0)


async def test_whole_numbers_are_coordinates_too(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = intake
    body = {**REPORT, "location": {"address": "Shihu", "lat": 33, "lon": 119}}
    assert (await client.post("/api/v1/reports", json=body)).status_code == 201


@pytest.mark.parametrize(
    "field", ["title", "category", "colour", "reporter"], ids=lambda f: f"in-{f}"
)
async def test_a_lone_surrogate_is_a_422_that_does_not_echo_it(
    intake: tuple[httpx.AsyncClient, Runtime], field: str
) -> None:
    client, rt = intake
    body = json.dumps({**REPORT, field: "marker"}).replace('"marker"', '"bad \\ud800 text"')
    response = await client.post(
        "/api/v1/reports", content=body, headers={"content-type": "application/json"}
    )
    assert_small_error(response, 422)
    assert await stored_reports(rt) == (0, 0)


async def test_errors_never_echo_unbounded_input(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = intake
    huge = "x" * 15_000  # three of them stay under the body limit
    body = {**REPORT, "title": huge, "category": huge, huge: "extra field named by its input"}
    response = await client.post("/api/v1/reports", json=body)
    errors = assert_small_error(response, 422)
    assert {e["loc"][1][:20] for e in errors} == {"title", "category", "x" * 20}
    assert huge not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/issues/{id}%00",
        "/api/v1/issues/%00{id}/history",
        "/api/v1/issues/{id}x",
        "/api/v1/issues/{lower}",
        "/api/v1/issues/{long}",
    ],
)
async def test_a_malformed_issue_id_is_not_found_in_the_projection(
    projection: httpx.AsyncClient, path: str
) -> None:
    issue_id = new_id()
    url = path.format(id=issue_id, lower=issue_id.lower(), long=issue_id * 400)
    response = await projection.get(url)
    assert_small_error(response, 404)
    assert response.json()["detail"] == "not found: malformed issue_id"


STEPS = {
    "resolution": {"unit": "town_construction", "summary": "Lamps replaced"},
    "lookback": {"outcome": "passed", "visitor": "grid-worker-7"},
}


@pytest.mark.parametrize("bad_id", ["{id}%00", "%00", "{id}{id}", "{lower}"])
async def test_a_malformed_issue_id_is_not_found_in_followup(
    followup: httpx.AsyncClient, bad_id: str
) -> None:
    issue_id = new_id()
    bad = bad_id.format(id=issue_id, lower=issue_id.lower())
    for step, body in STEPS.items():
        as_ = AS["line"] if step == "lookback" else None
        response = await followup.post(f"/api/v1/issues/{bad}/{step}", json=body, headers=as_)
        assert_small_error(response, 404)
    assert_small_error(await followup.get(f"/api/v1/issues/{bad}/case"), 404)


async def test_a_malformed_issue_id_with_a_bad_body_lists_both(
    followup: httpx.AsyncClient,
) -> None:
    response = await followup.post(
        "/api/v1/issues/%00/lookback", json={"outcome": "maybe"}, headers=AS["line"]
    )
    errors = assert_small_error(response, 422)
    assert {tuple(e["loc"]) for e in errors} == {
        ("path", "issue_id"),
        ("body", "outcome"),
    }


async def test_a_trailing_slash_is_the_same_route_never_a_redirect(
    intake: tuple[httpx.AsyncClient, Runtime],
    followup: httpx.AsyncClient,
    projection: httpx.AsyncClient,
) -> None:
    client, rt = intake
    posted = await client.post("/api/v1/reports/", json=REPORT)
    assert posted.status_code == 201, posted.text  # not 307: the body arrived
    issue_id = posted.json()["issue_id"]
    assert (await client.get("/api/v1/reference/")).status_code == 200
    assert (await client.get(f"/api/v1/issues/{issue_id}/reports/")).status_code == 200
    assert await stored_reports(rt) == (1, 1)

    assert (await followup.get("/api/v1/funds/")).status_code == 200
    lookback = await followup.post(
        f"/api/v1/issues/{issue_id}/lookback/", json={}, headers=AS["line"]
    )
    assert lookback.status_code == 422  # the route ran and read the (bad) body
    assert (await projection.get("/api/v1/issues/")).status_code == 200
    assert (await projection.get("/api/v1/stats/")).status_code == 200
    assert (await projection.get("/")).status_code == 200  # the desk stays at /
    for app in (client, followup, projection):
        assert (await app.get("/healthz/")).status_code == 200


def test_no_route_is_declared_with_a_trailing_slash(settings: Settings) -> None:
    """The edge strips the slash before routing: a route declared with one could not match."""
    for create in (create_intake, create_followup, create_projection):
        paths = [getattr(r, "path", "") for r in create(settings).routes]
        assert [p for p in paths if p.endswith("/") and p != "/"] == [], create


async def test_offsets_are_bounded(projection: httpx.AsyncClient) -> None:
    for offset in (10**30, 1_000_001, -1):
        response = await projection.get("/api/v1/issues", params={"offset": offset})
        errors = assert_small_error(response, 422)
        assert [e["loc"] for e in errors] == [["query", "offset"]]
    largest = await projection.get("/api/v1/issues", params={"offset": 1_000_000})
    assert largest.status_code == 200
    assert largest.json()["items"] == []


SQL = {
    "bad-cast": ("select cast('x' as integer)", {}),
    "division-by-zero": ("select 1 / 0", {}),
    "nul-in-text": ("select cast(:v as text)", {"v": "a\x00b"}),
    "out-of-range": ("select cast(:v as bigint)", {"v": 10**30}),
    "statement-timeout": ("set local statement_timeout = 50; select pg_sleep(1)", {}),
    "no-such-table": ("select * from no_such_table", {}),
}


@pytest.fixture
async def sql_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Intake with one extra route that runs a named statement of ``SQL``."""
    app = create_intake(settings)
    rt: Runtime = app.state.runtime

    app.state.access = Router.of(  # the test's own route, open to anyone
        {**matrix(), "GET /test/sql/{name}": Entry("GET /test/sql/{name}", True, {})}
    )

    @app.get("/test/sql/{name}")
    async def run(name: str) -> dict[str, str]:
        statement, params = SQL[name]
        async with rt.sessions() as session, session.begin():
            for part in statement.split("; "):
                await session.execute(text(part), params)
        return {"status": "ran"}

    async with serve(app) as client:
        yield client


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("bad-cast", 422),
        ("division-by-zero", 422),
        ("nul-in-text", 422),
        ("out-of-range", 422),
        ("statement-timeout", 503),
        ("no-such-table", 500),
    ],
)
async def test_database_errors_are_answered_by_whose_fault_they_are(
    sql_client: httpx.AsyncClient, name: str, status: int
) -> None:
    response = await sql_client.get(f"/test/sql/{name}")
    assert response.status_code == status, response.text
    assert len(response.content) < 200
    assert ("Retry-After" in response.headers) == (status == 503)


LIMIT = Settings().max_body_bytes


def padded(size: int) -> bytes:
    """A valid report of exactly ``size`` bytes (JSON with trailing whitespace)."""
    body = json.dumps(REPORT).encode()
    return body + b" " * (size - len(body))


async def test_a_body_at_the_limit_is_accepted(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = intake
    response = await client.post(
        "/api/v1/reports", content=padded(LIMIT), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_a_body_over_the_limit_is_a_413_and_stores_nothing(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = intake
    response = await client.post(
        "/api/v1/reports", content=padded(LIMIT + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert len(response.content) < 200
    assert await stored_reports(rt) == (0, 0)


async def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = intake
    chunk = 16 * 1024
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"title": "'
        for _ in range(1000):  # 16 MB if it were all read
            sent += chunk
            yield b"x" * chunk

    response = await client.post(
        "/api/v1/reports", content=endless(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "content-length" not in response.request.headers
    assert sent <= LIMIT + chunk
    assert await stored_reports(rt) == (0, 0)


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = intake
    read = False

    async def small() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield b"{}"

    response = await client.post(
        "/api/v1/reports",
        content=small(),
        headers={"content-type": "application/json", "content-length": str(10**8)},
    )
    assert response.status_code == 413
    assert not read
