"""Real NATS and PostgreSQL for the whole session; a fresh database and stream per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minqing.shared.contract.events import EVENT_CLASSES
from minqing.shared.service.settings import Settings
from tests.support.actors import SEEN_DIR, assert_actors_are_principals, checked_types
from tests.support.harness import (
    create_template,
    drop_database,
    fresh_database,
    isolated_settings,
)
from tests.support.servers import nats_server, postgres_server

OWNS_SEEN_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """The session's first process (xdist's controller, or the only one) makes the folder
    where every process notes the event types whose actors it checked."""
    if SEEN_DIR not in os.environ:
        directory = Path(tempfile.mkdtemp(prefix="minqing-actors-"))
        os.environ[SEEN_DIR] = str(directory)
        config.stash[OWNS_SEEN_DIR] = directory


def _whole_suite(config: pytest.Config) -> bool:
    """No paths, no -k, no -m: the run is the whole suite (what `make test` runs)."""
    return (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not config.getoption("keyword")
        and not config.getoption("markexpr")
        and not config.getoption("lf", False)
    )


OPERATIONS = "MINQING_OPERATIONS_TESTS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``operations`` (clusters, replicas, partitions, restarts, a restore
    drill: minutes of real servers) run in their own job, `make operations`, which CI runs
    after `make test`; elsewhere they are skipped, saying how to run them."""
    if os.environ.get(OPERATIONS) == "1":
        return
    skip = pytest.mark.skip(reason=f"an operations test: `make operations` ({OPERATIONS}=1)")
    for item in items:
        if item.get_closest_marker("operations") is not None:
            item.add_marker(skip)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A full run fails if some registered event type had its actor checked nowhere."""
    directory = session.config.stash.get(OWNS_SEEN_DIR, None)
    if directory is None:
        return
    try:
        if exitstatus != 0 or not _whole_suite(session.config):
            return
        missing = sorted({cls.TYPE for cls in EVENT_CLASSES} - checked_types(directory))
        if missing:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(
                    "no test checked that these event types name an authenticated "
                    f"principal as actor (tests/support/actors.py): {', '.join(missing)}",
                    red=True,
                )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        shutil.rmtree(directory, ignore_errors=True)


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
