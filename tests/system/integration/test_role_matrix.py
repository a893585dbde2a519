"""The role × endpoint matrix walks itself: every role, and nobody, through every endpoint
of ``matrix.toml``, over the front door.

The four services run in this process, for real (a real NATS and PostgreSQL), under
uvicorn behind a real caddy (tests/support/frontdoor.py); one known principal per role
(tests/support/identity.py) and an anonymous caller send one request to every entry. A
matter is reported first, so that ``{issue_id}`` is a real one, assigned to the unit whose
staff we act as. The expectation is read from the matrix alone: a caller the entry does
not name is refused by the guard (401 without credentials, 403 with a role it does not
take); one it names gets past the guard (whatever the route then answers: 404, 409 and
422 are fine, a 5xx is not). A new entry is walked without editing this test.

Another test checks the matrix against the services: every route of every service has an
entry, and every entry a route.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount

from minqing.services.frontdoor import INTERNAL, NOT_FOUND_BODY, Route, routing_table
from minqing.shared.identity.policy import Entry, matrix, openapi_path
from minqing.shared.identity.principal import Role
from minqing.shared.service.settings import SERVICES, ServiceName, Settings
from tests.support.frontdoor import flat_routes, front_door, serving
from tests.support.harness import eventually
from tests.support.identity import AS, PEOPLE, enrol

# One known principal per role, each with that role only; None: no credentials at all.
ACTING: dict[str, Role | None] = {
    "anonymous": None,
    "reporter": Role.REPORTER,
    "construction": Role.UNIT_STAFF,  # of town_construction, where the matter goes
    "line": Role.LINE_STAFF,
    "supervisor": Role.SUPERVISOR,
    "inspector": Role.INSPECTOR,
    "operator": Role.OPERATOR,
}

REPORT = {
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps between the school and the market have been dark for a week.",
    "category": "street_lights",
    "village": "shihu",
    "source": "hotline_12345",
    "reporter": {"name": "Zhang San", "phone": "138 0000 1234"},
    "location": {"address": "Shiguan Road", "lat": 33.51, "lon": 119.21},
}
UNIT = "town_construction"  # where the matrix's street lights in Shihu are assigned

# Plausible values of the path parameters other than the matter's id; any other parameter
# gets a well-formed id that names nothing.
VALUES = {
    "fmt": "json",
    "file": "app.js",
    "code": UNIT,
    "source": "hotline_12345",
    "service_code": "street_lights",
    "token": "not-a-real-token",
}
NOBODY = "01K0000000000000000000000Z"  # well-formed (a ULID), names nothing
PARAMETER = re.compile(r"\{(\w+)(?::path)?\}")
TYPED = re.compile(r":\w+\}")  # {name:path} as OpenAPI shows it: {name}

GUARD_401 = "log in, or send 'Authorization: Bearer <token>'"
NOT_ROUTED_BODY = NOT_FOUND_BODY  # the front door's own 404


def apps(settings: Settings) -> dict[ServiceName, Any]:
    import importlib

    return {
        name: importlib.import_module(f"minqing.services.{name}.app").create_app(settings)
        for name in SERVICES
    }


def fill(path: str, town: Town) -> str:
    """``path`` with each parameter given a value: the matter's, or a plausible one."""
    values = {**VALUES, "issue_id": town.issue_id, "report_id": town.report_id}
    return PARAMETER.sub(lambda found: values.get(found.group(1), NOBODY), path)


def fronts(entry: Entry, table: list[Route]) -> list[tuple[str, str]]:
    """Where ``entry`` is reached at the front door: (how, path template) for each service
    that serves it (an operations endpoint under each service's name, ``/<service>/...``)."""
    path = entry.endpoint.partition(" ")[2]
    shown = openapi_path(path)
    found: list[tuple[str, str]] = []
    for route in table:
        # The desk's files are one route at the front door, /dashboard/*.
        if route.path in (shown, re.sub(r"\{\w+\}$", "*", shown)):
            found.append((route.service, f"/{route.service}{path}" if route.prefixed else path))
    return found


@dataclass
class Town:
    door: str  # the front door's URL
    ports: dict[ServiceName, int]  # each service's own port (its operations endpoints)
    issue_id: str
    report_id: str


@pytest.fixture
async def town(settings: Settings, tmp_path: Path) -> AsyncIterator[Town]:
    async with AsyncExitStack() as stack:
        ports: dict[ServiceName, int] = {}
        for name, app in apps(settings).items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            ports[name] = await stack.enter_async_context(serving(app))
        await enrol(app.state.runtime.sessions)  # one database: every service knows them
        upstreams = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        door, _ = stack.enter_context(front_door(tmp_path, upstreams, settings=settings))
        async with httpx.AsyncClient(base_url=door.url.rstrip("/"), timeout=30) as client:
            created = await client.post("/api/v1/reports", json=REPORT, headers=AS["reporter"])
            assert created.status_code == 201, created.text
            issue_id, report_id = created.json()["issue_id"], created.json()["report_id"]

            async def assigned() -> tuple[Any, Any]:
                issue = await client.get(f"/api/v1/issues/{issue_id}", headers=AS["construction"])
                case = await client.get(
                    f"/api/v1/issues/{issue_id}/case", headers=AS["construction"]
                )
                return (
                    issue.json().get("unit") if issue.status_code == 200 else issue.status_code,
                    case.json().get("status") if case.status_code == 200 else case.status_code,
                )

            # The unit's staff reach it (projection and followup both know where it went).
            await eventually(assigned, lambda got: got == (UNIT, "assigned"))
        yield Town(door.url.rstrip("/"), ports, issue_id, report_id)


async def test_every_role_through_every_endpoint_over_the_front_door(town: Town) -> None:
    assert {PEOPLE[name].roles for name, role in ACTING.items() if role} == {
        frozenset({role}) for role in Role
    }, "one known principal per role, with that role only"
    entries = matrix()
    built = apps(Settings())  # building an app connects to nothing
    docs = {name: app.openapi() for name, app in built.items()}
    served = {name: set(routes_of(app)) for name, app in built.items()}
    table = routing_table(docs)
    wrong: list[str] = []
    walked = 0
    clients: dict[str, httpx.AsyncClient] = {
        "front door": httpx.AsyncClient(base_url=town.door, timeout=30),
        **{
            name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
            for name, port in town.ports.items()
        },
    }
    try:
        for entry in entries.values():
            method, _, path = entry.endpoint.partition(" ")
            places = [("front door", p) for _, p in fronts(entry, table)]
            documented = any(openapi_path(path) in doc["paths"] for doc in docs.values())
            if not places and (path in INTERNAL or not documented):
                # Not routed from outside (health, readiness, metrics; the API pages):
                # on the own port of each service that serves it.
                shown = f"{method} {openapi_path(path)}"
                places = [(name, path) for name in SERVICES if shown in served[name]]
            if not places:
                wrong.append(f"{entry.endpoint}: not reached through the front door")
                continue
            for where, template in places:
                sent = fill(template, town)
                for caller, role in ACTING.items():
                    headers = AS[caller] if role else {}
                    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
                    response = await clients[where].request(
                        method, sent, headers=headers, json=body
                    )
                    walked += 1
                    problem = judge(entry, role, response)
                    if problem:
                        wrong.append(f"{entry.endpoint} as {caller} at {where} {sent}: {problem}")
    finally:
        for client in clients.values():
            await client.aclose()
    assert not wrong, "\n".join(wrong)
    assert walked >= len(entries) * len(ACTING)


def judge(entry: Entry, role: Role | None, response: httpx.Response) -> str | None:
    """What is wrong with ``response`` to a caller in ``role`` (None: anonymous), if anything."""
    status = response.status_code
    answer = f"{status} {response.text[:200]}"
    if entry.public or (role is not None and role in entry.roles):
        if status in (401, 403) and not own_scheme(entry, role, response):
            return f"refused, though the matrix lets it: {answer}"
        if status >= 500 or status == 405:
            return f"got past the guard, then: {answer}"
        if status == 404 and response.text == NOT_ROUTED_BODY:
            return "the front door did not route it"
        return None
    if role is None:
        if status != 401 or response.json() != {"detail": GUARD_401}:
            return f"expected the guard's 401 for no credentials, got {answer}"
        if not response.headers.get("www-authenticate", "").startswith("Bearer"):
            return f"a 401 without a Bearer challenge: {dict(response.headers)}"
        return None
    expected = {"detail": f"{entry.endpoint} is not open to your roles ({role})"}
    if status != 403 or response.json() != expected:
        return f"expected the guard's 403 for {role}, got {answer}"
    return None


def own_scheme(entry: Entry, role: Role | None, response: httpx.Response) -> bool:
    """Whether a 401 or 403 from a public endpoint is its own answer, never the guard's:
    GET /api/v1/session answers nobody's "who am I" with 401, and Open311's POST checks the
    spec's own api_key (a 403 in the spec's format, a list)."""
    if not entry.public:
        return False
    if entry.endpoint == "GET /api/v1/session":
        return role is None and response.json() == {"detail": "not logged in"}
    return entry.endpoint.split()[1].startswith("/open311/") and (
        response.status_code == 403 and isinstance(response.json(), list)
    )


# ------------------------------------------------------------------- the matrix, the routes


def routes_of(app: Any) -> Iterator[str]:
    """Every "METHOD /path" an app serves, as its OpenAPI document shows paths: its
    documented operations, its routes outside the document (the desk's page, FastAPI's
    own /docs), and a mount of files as ``/mount/{file}``."""
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            yield f"{method.upper()} {path}"
    for route in flat_routes(app.routes):
        if isinstance(route, Mount):
            yield f"GET {route.path}/{{file}}"
        elif not getattr(route, "include_in_schema", True):
            path = TYPED.sub("}", route.path)
            for method in sorted(route.methods - {"HEAD"}):
                yield f"{method} {path}"


def test_every_route_has_an_entry_in_the_matrix_and_every_entry_a_route() -> None:
    served = {name: set(routes_of(app)) for name, app in apps(Settings()).items()}
    entries = {f"{key.partition(' ')[0]} {openapi_path(key.partition(' ')[2])}" for key in matrix()}
    for name, endpoints in served.items():
        missing = sorted(endpoints - entries)
        assert not missing, f"{name} serves what the matrix does not name (a 404): {missing}"
    routeless = sorted(entries - set().union(*served.values()))
    assert not routeless, f"the matrix names what no service serves: {routeless}"
