"""Rate limits at the HTTP edge (issue 15): every request counts against its caller's budget
(per principal, per source for a system, per address without credentials); over one, a 429
with Retry-After, and nobody else waits. Intake served in-process on real PostgreSQL and
NATS, with budgets of a few requests a minute: every test ends long before a window does,
so nothing here sleeps or depends on the time of day."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from minqing.services.intake.app import create_app
from minqing.services.intake.store import plumbing, reports
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings
from tests.support.harness import isolated_settings, serve
from tests.support.identity import AS, TOWN, enrol, token_of

BUDGETS = {
    "rate_limit_per_principal": "5/minute",
    "rate_limit_per_source": "8/minute",
    "rate_limit_anonymous": "5/minute",
}
REFERENCE = "/api/v1/reference"
PUBLIC = "/open311/v2/services.json"  # Open311's catalogue: public, read without credentials


def system(name: str, source: str) -> Principal:
    return Principal(Kind.SYSTEM, name, name, (Membership(TOWN, Role.REPORTER),), source=source)


# Two systems of one source (the hotline platform, with two tokens) and one of another.
SYSTEMS = {
    "hotline-a": system("hotline-a", "hotline_12345"),
    "hotline-b": system("hotline-b", "hotline_12345"),
    "wechat": system("wechat", "wechat_app"),
}
AS_SYSTEM = {name: {"Authorization": f"Bearer {token_of(name)}"} for name in SYSTEMS}


@dataclass
class Served:
    app: FastAPI
    client: httpx.AsyncClient  # sends the test desk's token unless told otherwise
    runtime: Runtime

    def anonymous(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        """A client without credentials, calling from ``address``."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://test")


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Served]:
    app = create_app(settings)
    async with serve(app) as client:
        await enrol(app.state.runtime.sessions, SYSTEMS)
        yield Served(app, client, app.state.runtime)


@pytest.fixture
async def intake(nats_url: str, database_url: str) -> AsyncIterator[Served]:
    async with served(isolated_settings(nats_url, database_url, **BUDGETS)) as it:
        yield it


def assert_throttled(response: httpx.Response, whose: str) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= 60  # seconds, within the minute
    body = response.json()  # Open311's paths answer in its own format: [{code, description}]
    detail = body[0]["description"] if isinstance(body, list) else body["detail"]
    assert f"too many requests from {whose} (at most " in detail, detail
    assert "try again in" in detail, detail


async def test_a_principal_over_its_budget_gets_429_and_another_goes_on_at_once(
    intake: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "minqing.shared.identity.limits")
    client = intake.client
    for _ in range(5):
        assert (await client.get(REFERENCE, headers=AS["reporter"])).status_code == 200
    for _ in range(4):  # refused, and refused again
        assert_throttled(await client.get(REFERENCE, headers=AS["reporter"]), "person:reporter")

    # The noisy one keeps at it while another person's requests go through, none waiting.
    async def noisy() -> list[int]:
        answers = [client.get(REFERENCE, headers=AS["reporter"]) for _ in range(20)]
        return [r.status_code for r in await asyncio.gather(*answers)]

    async def quiet() -> tuple[list[int], float]:
        started = time.perf_counter()
        answers = [await client.get(REFERENCE, headers=AS["supervisor"]) for _ in range(5)]
        return [r.status_code for r in answers], time.perf_counter() - started

    loud, (calm, took) = await asyncio.gather(noisy(), quiet())
    assert set(loud) == {429}
    assert calm == [200] * 5
    assert took < 5  # answered as they come (a throttled caller is refused, never queued)

    # Logged once for the window, not once per refused request.
    said = [r for r in caplog.records if "person:reporter" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING, [r.getMessage() for r in said]


async def test_a_system_is_limited_per_principal_and_per_source(intake: Served) -> None:
    client = intake.client
    for _ in range(5):
        assert (await client.get(REFERENCE, headers=AS_SYSTEM["hotline-a"])).status_code == 200
    assert_throttled(
        await client.get(REFERENCE, headers=AS_SYSTEM["hotline-a"]), "system:hotline-a"
    )
    # Another token of the same source has what is left of the source's 8: three.
    for _ in range(3):
        assert (await client.get(REFERENCE, headers=AS_SYSTEM["hotline-b"])).status_code == 200
    assert_throttled(
        await client.get(REFERENCE, headers=AS_SYSTEM["hotline-b"]), "the source hotline_12345"
    )
    # Another source, and a person, go on.
    assert (await client.get(REFERENCE, headers=AS_SYSTEM["wechat"])).status_code == 200
    assert (await client.get(REFERENCE, headers=AS["reporter"])).status_code == 200


async def test_anonymous_requests_to_a_public_endpoint_are_limited_per_address(
    intake: Served,
) -> None:
    async with intake.anonymous("10.0.0.7") as noisy, intake.anonymous("10.0.0.8") as other:
        for _ in range(5):
            assert (await noisy.get(PUBLIC)).status_code == 200
        assert_throttled(await noisy.get(PUBLIC), "the address 10.0.0.7")
        assert (await other.get(PUBLIC)).status_code == 200
        # With credentials, the same public endpoint counts against the principal instead.
        assert (await noisy.get(PUBLIC, headers=AS["inspector"])).status_code == 200
        # A request refused for having no credentials is a 401, as ever, not a 429.
        assert (await noisy.get(REFERENCE)).status_code == 401


async def test_health_readiness_and_metrics_are_never_limited(intake: Served) -> None:
    client = intake.client
    for _ in range(6):
        await client.get(REFERENCE, headers=AS["reporter"])
    assert (await client.get(REFERENCE, headers=AS["reporter"])).status_code == 429
    async with intake.anonymous() as anonymous:
        for _ in range(12):
            for path in ("/healthz", "/readyz", "/metrics"):
                assert (await anonymous.get(path)).status_code != 429, path
                answer = await client.get(path, headers=AS["reporter"])
                assert answer.status_code != 429, path
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await client.get("/healthz", headers=AS["reporter"])).status_code == 200
        # ... and asking them spent nothing of the address's budget.
        assert (await anonymous.get(PUBLIC)).status_code == 200


REPORT = {
    "description": "The railing is gone and the deck is cracked.",
    "category": "bridges",
    "village": "sanqi",
    "source": "visit",
    "reporter": {"name": "Wang Wu", "phone": "+86 139 1234 5678"},
    "location": {"address": "Sanqi Village, east bank"},
}


async def test_a_report_refused_with_429_records_nothing(intake: Served) -> None:
    client = intake.client
    for n in range(5):
        report = {**REPORT, "title": f"Dangerous bridge number {n}"}
        answer = await client.post("/api/v1/reports", json=report, headers=AS["reporter"])
        assert answer.status_code == 201, answer.text
    refused = {**REPORT, "title": "Dangerous bridge, once too often"}
    answer = await client.post("/api/v1/reports", json=refused, headers=AS["reporter"])
    assert_throttled(answer, "person:reporter")
    async with intake.runtime.sessions() as session:
        matters = await session.scalar(select(func.count()).select_from(reports))
        waiting = await session.scalar(select(func.count()).select_from(plumbing.outbox))
    assert (matters, waiting) == (5, 5)


async def test_an_empty_budget_is_no_limit(nats_url: str, database_url: str) -> None:
    off = {key: "" for key in BUDGETS}
    async with (
        served(isolated_settings(nats_url, database_url, **off)) as it,
        it.anonymous() as anonymous,
    ):
        for _ in range(30):
            assert (await it.client.get(REFERENCE, headers=AS["reporter"])).status_code == 200
            assert (await anonymous.get(PUBLIC)).status_code == 200


@pytest.mark.parametrize("bad", ["600/fortnight", "10/second;600/minute", "0/minute", "many"])
def test_a_budget_is_one_limit_in_limits_notation(bad: str) -> None:
    with pytest.raises(ValueError, match="expected one limit"):
        Settings(rate_limit_per_principal=bad)
    assert Settings(rate_limit_per_principal=" 10 per second ").rate_limit_per_principal == (
        "10 per second"
    )
