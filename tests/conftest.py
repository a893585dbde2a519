"""Real NATS and PostgreSQL for the whole session; a fresh database and stream per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from minqing.shared.service.settings import Settings
from tests.support.actors import assert_actors_are_principals
from tests.support.harness import (
    create_template,
    drop_database,
    fresh_database,
    isolated_settings,
)
from tests.support.servers import nats_server, postgres_server


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    with nats_server() as url:
        yield url


@pytest.fixture(scope="session")
def server_db_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
async def template_db(server_db_url: str) -> AsyncIterator[str]:
    name = await create_template(server_db_url)
    yield name
    await drop_database(server_db_url, name)


@pytest.fixture
async def database_url(server_db_url: str, template_db: str) -> AsyncIterator[str]:
    async with fresh_database(server_db_url, template_db) as url:
        yield url


@pytest.fixture
async def settings(nats_url: str, database_url: str) -> AsyncIterator[Settings]:
    """A test's own settings; when it ends, every event it left on its canonical stream
    names an authenticated principal as its actor (``tests.support.actors``)."""
    settings = isolated_settings(nats_url, database_url)
    yield settings
    await assert_actors_are_principals(settings)
