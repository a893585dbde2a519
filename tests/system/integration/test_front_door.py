"""The front door with the real caddy: every path of every service's OpenAPI document reaches
that service (and only it), the security headers are on every answer (a page, an API
answer, a service's error, the front door's own errors), and TLS with a certificate made
here answers over HTTPS with HSTS, the services seeing the client's scheme and address.

The four services are built as `minqing serve` builds them and served in this process under
uvicorn; each is wrapped by a recorder that notes what it received (and, unless it lets the
request through to the real app, answers with its own name)."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from minqing.services.frontdoor import INTERNAL, FrontDoor, routing_table
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import SERVICES, ServiceName, Settings
from tests.support.frontdoor import Recorder, Seen, concrete, front_door, self_signed, serving

APPS: dict[ServiceName, Any] = {}


def apps() -> dict[ServiceName, Any]:
    """Each service's app as `minqing serve` builds it (built once: it takes seconds)."""
    if not APPS:
        import importlib

        for name in SERVICES:
            module = importlib.import_module(f"minqing.services.{name}.app")
            APPS[name] = module.create_app(Settings())
    return APPS


class _Router:
    """Only the routes of a service's app, to match a request against: calling it does
    nothing (the Answering recorder answers instead)."""

    def __init__(self, app: Any) -> None:
        self.routes = app.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


class Answering(Recorder):
    """Records, then answers itself: 200 with its name for a path its app routes, else 404
    (with a ``Server`` header, as uvicorn sends one)."""

    def __init__(self, service: ServiceName, app: Any, seen: list[Seen]) -> None:
        super().__init__(service, _Router(app), seen)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)
        if scope["type"] != "http":
            return
        routed = self.seen[-1].route is not None
        body = f'{{"service": "{self.service}", "routed": {str(routed).lower()}}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200 if routed else 404,
                "headers": [(b"content-type", b"application/json"), (b"server", b"uvicorn")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def services() -> AsyncIterator[tuple[dict[ServiceName, str], list[Seen]]]:
    """The four services answering for themselves on free ports; what each received."""
    seen: list[Seen] = []
    async with AsyncExitStack() as stack:
        upstreams = {}
        for name, app in apps().items():
            recorder = Answering(name, app, seen)
            port = await stack.enter_async_context(serving(recorder))
            upstreams[name] = f"127.0.0.1:{port}"
        yield upstreams, seen


@pytest.fixture
def door(
    services: tuple[dict[ServiceName, str], list[Seen]], tmp_path: Path
) -> Iterator[FrontDoor]:
    with front_door(tmp_path, services[0]) as (door, _):
        yield door


NOT_ROUTED = {"detail": "Not Found: no such path at the front door"}
SECURITY = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def assert_secure_headers(response: httpx.Response, *, tls: bool = False) -> None:
    headers = response.headers
    for name, value in SECURITY.items():
        assert headers.get(name) == value, (response.request.url, name, dict(headers))
    policy = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split("; ")}
    assert policy["script-src"] == ["'self'"], policy  # no inline script, no eval
    assert policy["frame-ancestors"] == ["'none'"], policy
    assert policy["object-src"] == ["'none'"], policy
    assert "server" not in headers and "via" not in headers, dict(headers)
    assert ("strict-transport-security" in headers) is tls, dict(headers)


async def test_every_path_of_every_service_reaches_that_service_through_the_front_door(
    services: tuple[dict[ServiceName, str], list[Seen]], door: FrontDoor
) -> None:
    docs = {name: app.openapi() for name, app in apps().items()}
    seen = services[1]
    table = routing_table(docs)
    checked = 0
    async with httpx.AsyncClient(base_url=door.url.rstrip("/"), timeout=10) as client:
        for route in table:
            methods = list(docs[route.service]["paths"].get(route.path, {"get": None}))
            for method in methods:
                seen.clear()
                path = concrete(route)
                response = await client.request(method.upper(), path)
                expected = path.removeprefix(f"/{route.service}") if route.prefixed else path
                assert [(s.service, s.method, s.path) for s in seen] == [
                    (route.service, method.upper(), expected)
                ], (method, path)
                template = "/dashboard" if route.path == "/dashboard/*" else route.path
                received = seen[0].route or ""
                assert re.sub(r":\w+}", "}", received) == template, (method, path, received)
                assert response.status_code == 200, (method, path, response.text)
                assert response.json() == {"service": route.service, "routed": True}
                checked += 1
                if ":path}" in received:  # a parameter that may hold slashes: one that does
                    seen.clear()
                    slashed = f"{path}/with/slashes"
                    response = await client.request(method.upper(), slashed)
                    assert response.json() == {"service": route.service, "routed": True}
                    assert [s.path for s in seen] == [f"{expected}/with/slashes"]

        # A trailing slash is dropped, as the services drop it (the query string kept).
        seen.clear()
        response = await client.post("/api/v1/reports/?x=1")
        assert response.json() == {"service": "intake", "routed": True}
        assert (seen[0].path, seen[0].headers.get("host")) == ("/api/v1/reports", door.listen)
        assert (seen[0].route, seen[0].query) == ("/api/v1/reports", "x=1")
        # Every operation of every document was sent (the internal ones aside).
        operations = sum(
            len(ops)
            for doc in docs.values()
            for p, ops in doc["paths"].items()
            if p not in INTERNAL
        )
        assert checked == operations + len(SERVICES) + 2  # + each /openapi.json, the desk's two

        # Not routed: health, readiness and metrics (bare or under a service's name), a path
        # no service has, a shared path without its service's name.
        seen.clear()
        refused = [*INTERNAL, *(f"/{s}{p}" for s in SERVICES for p in INTERNAL)]
        refused += ["/nowhere", "/api/v1/dead-letters", "/intake/api/v1/reports", "/docs"]
        refused += ["/intake/docs", "/api/v1/ingress/x/y", "/intake/%6detrics", "/INTAKE/metrics"]
        for path in refused:
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json() == NOT_ROUTED
            assert_secure_headers(response)
        assert seen == []


async def test_security_headers_on_a_page_an_api_answer_and_errors(tmp_path: Path) -> None:
    seen: list[Seen] = []
    async with AsyncExitStack() as stack:
        # The projection for real (its desk, its errors), assignment answering for itself,
        # the other two down.
        projection = Recorder("projection", apps()["projection"], seen)
        assignment = Answering("assignment", apps()["assignment"], seen)
        upstreams: dict[ServiceName, str] = {
            "intake": "127.0.0.1:1",
            "followup": "127.0.0.1:1",
            "projection": f"127.0.0.1:{await stack.enter_async_context(serving(projection))}",
            "assignment": f"127.0.0.1:{await stack.enter_async_context(serving(assignment))}",
        }
        door, _ = stack.enter_context(front_door(tmp_path, upstreams))
        async with httpx.AsyncClient(base_url=door.url.rstrip("/"), timeout=10) as client:
            page = await client.get("/")
            assert page.status_code == 200 and "<title>民情 · 台账</title>" in page.text
            assert_secure_headers(page)
            script = await client.get("/dashboard/app.js")
            assert script.status_code == 200
            assert script.headers["content-type"].startswith("text/javascript")
            assert_secure_headers(script)

            # (With the identity guard on, the projection asks who is calling: its 401 is an
            # API answer with headers too; either way it is the service's answer.)
            api = await client.get("/api/v1/names")
            assert api.status_code in (200, 401) and api.json() != NOT_ROUTED
            assert "villages" in api.json() if api.status_code == 200 else "detail" in api.json()
            assert_secure_headers(api)
            answered = await client.get("/api/v1/units")
            assert answered.json() == {"service": "assignment", "routed": True}
            assert_secure_headers(answered)  # uvicorn's Server header is gone too

            error = await client.get("/api/v1/issues/not-an-id")
            assert error.status_code in (401, 404) and error.json() != NOT_ROUTED  # the service's
            assert_secure_headers(error)

            down = await client.post("/api/v1/reports", json={})
            assert down.status_code == 502, down.text
            assert down.json() == {"detail": "Bad Gateway"}
            assert_secure_headers(down)
    # Caddy set the forwarded headers itself: what a client claims is not passed on.
    assert seen and all(s.headers.get("x-forwarded-proto") == "http" for s in seen)


async def test_tls_with_a_certificate_answers_over_https_with_hsts(
    services: tuple[dict[ServiceName, str], list[Seen]], tmp_path: Path
) -> None:
    upstreams, seen = services
    cert, key = self_signed(tmp_path / "tls")
    with front_door(tmp_path, upstreams, tls=(cert, key)) as (door, caddy):
        assert door.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=door.url.rstrip("/"), verify=trust) as client:
            response = await client.get(
                "/api/v1/issues",
                headers={"x-forwarded-for": "6.6.6.6", "x-forwarded-proto": "http"},
            )
            assert response.status_code == 200
            assert response.json() == {"service": "projection", "routed": True}
            assert_secure_headers(response, tls=True)
            assert response.headers["strict-transport-security"] == "max-age=31536000"
            missing = await client.get("/nowhere")
            assert missing.status_code == 404
            assert_secure_headers(missing, tls=True)
        # The service saw the client's scheme and address, from Caddy, not the client's claims.
        (request,) = seen[:1]
        assert (request.service, request.scheme, request.client) == (
            "projection",
            "https",
            "127.0.0.1",
        )
        assert request.headers["x-forwarded-proto"] == "https"
        assert request.headers["x-forwarded-for"] == "127.0.0.1"
        # Plain HTTP is not served on the TLS port, and the certificate is the one we gave.
        async with httpx.AsyncClient(timeout=5) as plain:
            refused = await plain.get(door.url.replace("https://", "http://"))
        assert refused.status_code == 400
        log = caddy.log_path.read_text()
        assert "acme" not in log.lower() and "install" not in log.lower(), log
        assert not (caddy.data_dir / "data" / "caddy" / "pki").exists()


async def test_requests_go_round_a_services_replicas_and_pass_over_one_that_is_down(
    tmp_path: Path,
) -> None:
    app = apps()["intake"]
    first_seen: list[Seen] = []
    second_seen: list[Seen] = []
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(serving(Answering("intake", app, first_seen)))
        second = await stack.enter_async_context(serving(Answering("intake", app, second_seen)))
        down = free_port()  # a replica that is not running: nothing listens there
        upstreams: dict[ServiceName, str] = {
            name: f"127.0.0.1:{down}" for name in SERVICES if name != "intake"
        }
        upstreams["intake"] = f"127.0.0.1:{first} 127.0.0.1:{down} 127.0.0.1:{second}"
        with front_door(tmp_path, upstreams) as (door, _):
            async with httpx.AsyncClient(base_url=door.url.rstrip("/"), timeout=10) as client:
                answers = [
                    (await client.post("/api/v1/reports", json={})).status_code for _ in range(12)
                ]
    # every request reached a running replica, a POST too (it never reached the dead one),
    # and both running replicas had a share
    assert answers == [200] * 12
    posts = [[s for s in seen if s.method == "POST"] for seen in (first_seen, second_seen)]
    assert len(posts[0]) + len(posts[1]) == 12 and all(posts), [len(p) for p in posts]
    # the front door checks each replica's health (/healthz: the process answers)
    assert {s.path for s in first_seen if s.method == "GET"} <= {"/healthz"}


def test_the_generated_caddyfile_is_valid_for_caddy(tmp_path: Path) -> None:
    import subprocess

    from minqing.services.frontdoor import write
    from minqing.shared.embedded.caddy import caddy_binary

    cert, key = self_signed(tmp_path)
    for door in (
        FrontDoor.default(),
        FrontDoor(
            listen="0.0.0.0:443",
            upstreams=FrontDoor.default().upstreams,
            tls_cert_file=cert,
            tls_key_file=key,
        ),
        FrontDoor(  # two replicas of each service, as deploy/compose.yaml runs them
            listen=":8080",
            upstreams={name: f"{name}-1:8081 {name}-2:8081" for name in SERVICES},
        ),
    ):
        config = tmp_path / "Caddyfile"
        write(config, door)
        checked = subprocess.run(
            [str(caddy_binary()), "validate", "--config", str(config), "--adapter", "caddyfile"],
            capture_output=True,
            text=True,
            env={
                "XDG_DATA_HOME": str(tmp_path),
                "XDG_CONFIG_HOME": str(tmp_path),
                "HOME": str(tmp_path),
            },
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        formatted = subprocess.run(
            [str(caddy_binary()), "fmt", str(config)], capture_output=True, text=True, check=True
        )
        assert formatted.stdout == config.read_text()  # as `caddy fmt` writes it
