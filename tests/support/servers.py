"""NATS and PostgreSQL for test sessions: from the environment, Docker, or embedded servers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from minqing.shared.embedded import EmbeddedNats, EmbeddedPostgres
from minqing.shared.service.infra import ensure_database

NATS_IMAGE = "nats:2.11"
POSTGRES_IMAGE = "postgres:16-alpine"
TEST_DATABASE = "minqing_test"


def docker_available(timeout: float = 2.0) -> bool:
    """True only if a Docker engine answers a ping within ``timeout`` seconds."""
    try:
        import docker  # type: ignore[import-untyped]
        from testcontainers.core.docker_client import get_docker_host

        host = get_docker_host()
        seconds = max(1, round(timeout))
        client = (
            docker.DockerClient(base_url=host, timeout=seconds)
            if host
            else docker.from_env(timeout=seconds)
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextmanager
def scratch_dir(prefix: str = "minqing-") -> Iterator[Path]:
    """A temporary directory for embedded PostgreSQL data, outside pytest's ``tmp_path``.

    Run as root, PostgreSQL runs as the OS user ``pgserver``, which pgserver lets traverse the
    data dir's parents (chmod o+x). Every pytest session that starts on this machine resets
    ``/tmp/pytest-of-<user>`` to 0700, which would lock that user out of a server in use.
    """
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as path:
        yield Path(path)


def _temp_dir(stack: ExitStack, prefix: str) -> Path:
    """A temporary directory deleted when ``stack`` closes."""
    return stack.enter_context(scratch_dir(prefix))


def _nats_url(stack: ExitStack) -> str:
    """MINQING_TEST_NATS_URL, else a NATS container, else an embedded nats-server."""
    if url := os.environ.get("MINQING_TEST_NATS_URL"):
        return url
    if docker_available():
        from testcontainers.community.nats import NatsContainer

        return stack.enter_context(NatsContainer(NATS_IMAGE, jetstream=True)).nats_uri()
    return stack.enter_context(EmbeddedNats(_temp_dir(stack, "minqing-nats-"))).url


def _postgres_url(stack: ExitStack) -> str:
    """MINQING_TEST_DATABASE_URL, else a PostgreSQL container, else an embedded server."""
    if url := os.environ.get("MINQING_TEST_DATABASE_URL"):
        return url
    if docker_available():
        from testcontainers.community.postgres import PostgresContainer

        container = stack.enter_context(PostgresContainer(POSTGRES_IMAGE, driver="asyncpg"))
        server_url = make_url(container.get_connection_url())
        return server_url.set(database=TEST_DATABASE).render_as_string(hide_password=False)
    postgres = EmbeddedPostgres(_temp_dir(stack, "minqing-pg-") / "pgdata", TEST_DATABASE)
    return stack.enter_context(postgres).url()


@contextmanager
def nats_server() -> Iterator[str]:
    """Yield a JetStream-enabled NATS URL for the duration of the block."""
    with ExitStack() as stack:
        yield _nats_url(stack)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy asyncpg URL of an existing database for the duration of the block."""
    with ExitStack() as stack:
        url = _postgres_url(stack)
        ensure_database(url)
        yield url
