"""A property-based corpus of malformed reports against intake as a real process: every bad
request is a 4xx (never a 500), every valid one interleaved with them is kept, and the service
stays healthy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minqing.shared.service.settings import Settings
from tests.support.harness import fresh_database, isolated_settings
from tests.support.identity import DESK, enrol_at
from tests.support.processes import ServiceProcess, process_env
from tests.support.servers import scratch_dir

VALID: dict[str, Any] = {
    "title": "石官路路灯不亮",
    "description": "Six lamps between the school and the market are dark.",
    "category": "street_lights",
    "village": "Shihu",
    "source": "grid_center",
    "reporter": {"name": "Zhang San", "phone": "13800001234"},
    "location": {"address": "Shiguan Road", "lat": 33.51, "lon": 119.21},
    "external_ref": "GC-1",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
nasty_text = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["", "   ", "\x00", "a\x00b", "\x1b[31m", "\ud800", "%00", "x" * 6000]),
)


@st.composite
def malformed_json(draw: st.DrawFn) -> dict[str, Any]:
    """The valid report with fields broken, removed or added."""
    body = dict(VALID)
    for field in draw(st.sets(st.sampled_from(sorted(VALID)), min_size=1, max_size=4)):
        action = draw(st.sampled_from(["replace", "text", "drop"]))
        if action == "drop":
            body.pop(field, None)
        elif action == "text":
            body[field] = draw(nasty_text)
        else:
            body[field] = draw(json_values)
    if draw(st.booleans()):
        body[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return body


case = st.one_of(
    malformed_json().map(lambda b: ("json", b)),
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
    st.just(("valid", None)),
)


@pytest.fixture(scope="module")
async def intake(
    nats_url: str, server_db_url: str, template_db: str
) -> AsyncIterator[ServiceProcess]:
    # One service and database for the module: hypothesis runs the test body many times.
    async with fresh_database(server_db_url, template_db) as url:
        # Up to 400 requests in a minute from one principal: no rate limit (not its subject).
        options: Settings = isolated_settings(nats_url, url, rate_limit_per_principal="")
        await asyncio.to_thread(enrol_at, url)
        with scratch_dir("minqing-fuzz-") as logs:
            service = ServiceProcess("intake", process_env(options), Path(logs))
            await asyncio.to_thread(service.start)
            try:
                yield service
            finally:
                await asyncio.to_thread(service.stop)


accepted: list[str] = []


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(case, min_size=1, max_size=5))
def test_malformed_reports_are_refused_and_valid_ones_kept(
    intake: ServiceProcess, cases: list[tuple[str, Any]]
) -> None:
    with httpx.Client(base_url=intake.url, timeout=10, headers=DESK) as client:
        for kind, payload in cases:
            if kind == "valid":
                body = {**VALID, "external_ref": f"GC-{len(accepted) + 2}"}
                response = client.post("/api/v1/reports", json=body)
                assert response.status_code == 201, response.text
                accepted.append(response.json()["issue_id"])
                continue
            raw = json.dumps(payload).encode() if kind == "json" else payload
            response = client.post(
                "/api/v1/reports", content=raw, headers={"content-type": "application/json"}
            )
            assert response.status_code < 500, (payload, response.text)
            if response.status_code in (200, 201):  # the mutation happened to stay valid
                accepted.append(response.json()["issue_id"])
            else:
                assert response.status_code in (400, 409, 413, 422), response.text
                assert "detail" in response.json()


def test_the_service_stayed_healthy_and_kept_every_accepted_report(
    intake: ServiceProcess,
) -> None:
    assert accepted, "the corpus sent valid reports"
    with httpx.Client(base_url=intake.url, timeout=10, headers=DESK) as client:
        assert client.get("/readyz").status_code == 200
        for issue_id in set(accepted):
            assert client.get(f"/api/v1/issues/{issue_id}/reports").status_code == 200
