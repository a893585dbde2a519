"""A hung or restarted database: requests answer 503 within seconds, then work again.

Each test runs its own throwaway PostgreSQL, so freezing it stops no other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from minqing.services.projection.app import create_app
from minqing.shared.embedded import EmbeddedPostgres
from minqing.shared.persistence.migrations import upgrade_all
from tests.support.harness import isolated_settings, serve

TIMEOUTS = {
    "database_connect_timeout_seconds": 1.0,
    "database_statement_timeout_seconds": 1.0,
    "database_pool_timeout_seconds": 1.0,
}


@pytest.fixture
def postgres() -> Iterator[EmbeddedPostgres]:
    # Not pytest's tmp_path: the server runs as another OS user when the tests run as root.
    with (
        tempfile.TemporaryDirectory(prefix="minqing-pg-outage-") as directory,
        EmbeddedPostgres(Path(directory) / "pgdata", "minqing_outage") as server,
    ):
        yield server


@pytest.fixture
async def projection(postgres: EmbeddedPostgres, nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await asyncio.to_thread(upgrade_all, postgres.url())
    settings = isolated_settings(nats_url, postgres.url(), **TIMEOUTS)
    async with serve(create_app(settings)) as client:
        yield client


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """SIGSTOP the postmaster and its backends; always SIGCONT them again."""
    postmaster = psutil.Process(pid)
    processes = [postmaster, *postmaster.children(recursive=True)]
    try:
        for process in processes:
            process.suspend()
        yield
    finally:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()


async def timed_get(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    async with asyncio.timeout(15):  # fail, rather than hang with the database
        response = await client.get(url)
    return response, time.monotonic() - start


async def test_a_hung_database_is_a_quick_503_and_the_next_request_works(
    projection: httpx.AsyncClient, postgres: EmbeddedPostgres
) -> None:
    assert (await projection.get("/api/v1/issues")).status_code == 200
    assert postgres.pid is not None
    with frozen(postgres.pid):
        for _ in range(3):  # a pooled connection first, then new ones
            response, seconds = await timed_get(projection, "/api/v1/issues")
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            assert seconds < 6, seconds
    response, _ = await timed_get(projection, "/api/v1/issues")
    assert response.status_code == 200, response.text


async def test_after_a_database_restart_the_next_request_works(
    projection: httpx.AsyncClient, postgres: EmbeddedPostgres
) -> None:
    assert (await projection.get("/api/v1/issues")).status_code == 200
    url = postgres.url()
    postgres.stop()
    during, seconds = await timed_get(projection, "/api/v1/issues")
    assert (during.status_code, during.headers.get("Retry-After")) == (503, "5")
    assert seconds < 3, seconds
    postgres.start()
    assert postgres.url() == url
    for _ in range(3):
        assert (await projection.get("/api/v1/issues")).status_code == 200
