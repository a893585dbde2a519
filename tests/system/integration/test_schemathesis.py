"""Schemathesis against every service's OpenAPI document, through the front door, with the
credentials of each role: no 5xx, and no answer that breaks its own schema.

The four services run in this process for real (a real NATS and PostgreSQL) under uvicorn
behind a real caddy (tests/support/frontdoor.py); a few matters are reported first, so that
the ids Schemathesis sends are, half the time, real ones. Each document is rewritten as the
front door serves it (an operations endpoint under its service's name, the internal ones
left out) and Schemathesis makes eight positive cases of every operation with the real
ids and a few with made-up ones (deterministic: Hypothesis derandomized, no database of
examples). Every case is sent with the token of the first role the matrix lets through that
endpoint, the first three with every other such role, and one with a role it does not (the
guard's 403). The checks: not a server error, the response's schema, its content type, and its
status code documented (the guard's 401 and 403 and the rate limits' 429 aside: they are
every route's, and the role matrix's test holds them).

The services run on this test's event loop, so each case is sent with httpx (async) rather
than Schemathesis's own ``case.call`` (blocking), then checked with ``case.validate_response``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from minqing.services.frontdoor import Route, routing_table
from minqing.shared.identity.policy import Entry, matrix, openapi_path
from minqing.shared.identity.principal import Role
from minqing.shared.service.settings import SERVICES, ServiceName, Settings
from tests.support.frontdoor import front_door, serving
from tests.support.harness import eventually
from tests.support.identity import AS, enrol

# One known principal per role (tests/support/identity.py), each with that role only.
ROLES: dict[str, Role] = {
    "reporter": Role.REPORTER,
    "construction": Role.UNIT_STAFF,  # of town_construction, where the matters go
    "line": Role.LINE_STAFF,
    "supervisor": Role.SUPERVISOR,
    "inspector": Role.INSPECTOR,
    "operator": Role.OPERATOR,
}
UNIT = "town_construction"
REPORTS = [
    {
        "title": title,
        "description": f"{title}: reported for the fuzzing of the API documents.",
        "category": "street_lights",
        "village": "shihu",
        "source": "hotline_12345",
        "reporter": {"name": "Zhang San", "phone": "138 0000 1234"},
        "location": {"address": "Shiguan Road", "lat": 33.51, "lon": 119.21},
    }
    for title in (
        "Street lights out on Shiguan Road",
        "A lamp post leaning over the school gate",
        "Flickering lights by the market",
    )
]
EXAMPLES = 8  # positive cases of each operation, with the real ids (where it has any)
RANDOM_IDS = 3  # and with whatever ids Schemathesis makes up
EVERY_ROLE = 3  # cases sent with every role let through (all of them with the first)
# Every route's answers, never in a document: the guard's refusals, the rate limits'.
GUARDED = {401, 403, 429}
NO_LIMITS = {
    "rate_limit_per_principal": "",
    "rate_limit_per_source": "",
    "rate_limit_anonymous": "",
}
# Not fuzzed: logging in with made-up passwords slows that name down for every later test of
# this run's database (the login limits are their own), and logging out ends no token.
SKIPPED = {"POST /api/v1/session", "DELETE /api/v1/session"}


@dataclass
class Town:
    door: str  # the front door's URL
    ids: dict[str, str]  # path parameter -> a real value


def apps(settings: Settings) -> dict[ServiceName, Any]:
    return {
        name: importlib.import_module(f"minqing.services.{name}.app").create_app(settings)
        for name in SERVICES
    }


@pytest.fixture
async def town(settings: Settings, tmp_path: Path) -> AsyncIterator[Town]:
    settings = settings.model_copy(update=NO_LIMITS)
    async with AsyncExitStack() as stack:
        upstreams: dict[ServiceName, str] = {}
        for name, app in apps(settings).items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            upstreams[name] = f"127.0.0.1:{await stack.enter_async_context(serving(app))}"
        await enrol(app.state.runtime.sessions)
        door, _ = stack.enter_context(front_door(tmp_path, upstreams, settings=settings))
        url = door.url.rstrip("/")
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            created = []
            for report in REPORTS:
                answer = await client.post("/api/v1/reports", json=report, headers=AS["reporter"])
                assert answer.status_code == 201, answer.text
                created.append(answer.json())
            issue_id = created[0]["issue_id"]

            async def assigned() -> object:
                case = await client.get(
                    f"/api/v1/issues/{issue_id}/case", headers=AS["construction"]
                )
                return case.json().get("status") if case.status_code == 200 else case.status_code

            await eventually(assigned, lambda got: got == "assigned")
        ids = {
            "issue_id": issue_id,
            "report_id": created[0]["report_id"],
            "code": UNIT,
            "source": "hotline_12345",
            "service_code": "street_lights",
            "fmt": "json",
        }
        yield Town(url, ids)


def door_documents(url: str) -> dict[ServiceName, tuple[dict[str, Any], dict[str, str]]]:
    """Each service's document as the front door serves it, and each path there -> the path
    the service names (for the matrix)."""
    docs = {name: app.openapi() for name, app in apps(Settings()).items()}
    table: list[Route] = routing_table(docs)
    found: dict[ServiceName, tuple[dict[str, Any], dict[str, str]]] = {}
    for service, doc in docs.items():
        fronts = {r.path: r.front for r in table if r.service == service}
        paths = {fronts[p]: ops for p, ops in doc["paths"].items() if p in fronts}
        own = {fronts[p]: p for p in doc["paths"] if p in fronts}
        found[service] = ({**doc, "paths": paths, "servers": [{"url": url}]}, own)
    return found


def examples(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` cases drawn from ``strategy``, the same ones every run."""
    drawn: list[Any] = []

    @hypothesis.settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(strategy)
    def draw(case: Any) -> None:
        drawn.append(case)

    draw()
    return drawn[:count]


def request_of(case: Any, base: str, headers: dict[str, str]) -> dict[str, Any]:
    """The case as httpx's request arguments (Schemathesis serializes for requests)."""
    sent = case.as_transport_kwargs(base_url=base, headers=headers)
    kwargs: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "headers": sent.get("headers") or {},
        "params": sent.get("params") or None,
        "cookies": sent.get("cookies") or None,
    }
    if "json" in sent:
        kwargs["json"] = sent["json"]
    data = sent.get("data")
    if isinstance(data, (bytes, str)):
        kwargs["content"] = data
    elif data:
        kwargs["data"] = data
    if sent.get("files"):
        kwargs["files"] = [_file(name, spec) for name, spec in _pairs(sent["files"])]
    return kwargs


def _pairs(files: Any) -> list[tuple[str, Any]]:
    return list(files.items()) if isinstance(files, dict) else list(files)


def _file(name: str, spec: Any) -> tuple[str, Any]:
    """A multipart part as httpx takes it: requests also sends a number or a boolean (as its
    text), httpx only text or bytes, so a drawn number is sent as requests would send it."""
    if isinstance(spec, tuple):
        filename, content, *rest = spec
        return name, (filename, _bytes(content), *rest)
    return name, _bytes(spec)


def _bytes(content: Any) -> Any:
    if isinstance(content, (bytes, str)) or hasattr(content, "read"):
        return content
    return str(content).encode()


def cases_of(operation: Any, ids: dict[str, str]) -> list[Any]:
    names = {p.name for p in operation.path_parameters}
    real = {name: value for name, value in ids.items() if name in names}
    drawn = examples(operation.as_strategy(path_parameters=real), EXAMPLES) if real else []
    return drawn + examples(operation.as_strategy(), RANDOM_IDS if real else EXAMPLES)


async def test_every_operation_of_every_document_as_every_role(town: Town) -> None:
    entries: dict[str, Entry] = {
        f"{key.partition(' ')[0]} {openapi_path(key.partition(' ')[2])}": entry
        for key, entry in matrix().items()
    }
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    wrong: list[str] = []
    sent = 0
    async with httpx.AsyncClient(timeout=30) as client:
        for _service, (document, own) in door_documents(town.door).items():
            schema = schemathesis.openapi.from_dict(document)
            for result in schema.get_all_operations():
                operation = result.ok()
                endpoint = f"{operation.method.upper()} {own[operation.path]}"
                if endpoint in SKIPPED:
                    continue
                entry = entries[endpoint]
                allowed = [n for n, r in ROLES.items() if entry.public or r in entry.roles]
                refused = [n for n in ROLES if n not in allowed][:1]
                cases = cases_of(operation, town.ids)
                for caller in allowed + refused:
                    first = allowed[:1] == [caller]
                    for case in cases if first else cases[: EVERY_ROLE if caller in allowed else 1]:
                        kwargs = request_of(case, town.door, AS[caller])
                        request = client.build_request(**kwargs)
                        request.read()  # a multipart body too, for the checks to see
                        response = await client.send(request)
                        sent += 1
                        status = response.status_code
                        if caller in refused and status != 403:
                            wrong.append(f"{endpoint} as {caller}: {status}, not the guard's 403")
                        more = [] if status in GUARDED else [status_code_conformance]
                        try:
                            case.validate_response(response, checks=checks + more)
                        except FailureGroup as failed:
                            found = "; ".join(f"{f.title}: {f.message}" for f in failed.exceptions)
                            wrong.append(f"{endpoint} as {caller}: {found}\n  {kwargs}")
    assert sent > 500
    assert not wrong, f"{len(wrong)} failures:\n" + "\n".join(wrong)
