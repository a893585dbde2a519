"""Embedded NATS and PostgreSQL start, persist data across restarts, and stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from minqing.shared.embedded import EmbeddedNats, EmbeddedPostgres
from minqing.shared.embedded.nats import NATS_CONFIG, nats_server_binary
from minqing.shared.embedded.process import process_alive
from minqing.shared.service.infra import ensure_database, free_port, run_sync
from tests.support.servers import docker_available, scratch_dir


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Not under pytest's own temp root: see ``scratch_dir``."""
    with scratch_dir("minqing-infra-") as path:
        yield path


async def _scalar(url: str, sql: str) -> object:
    """Run one query in its own transaction and return the first column of the first row."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.scalar(text(sql))
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: str) -> None:
    """Run statements in one committed transaction."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for sql in statements:
                await conn.execute(text(sql))
    finally:
        await engine.dispose()


def test_nats_binary_and_config_are_found() -> None:
    assert os.access(nats_server_binary(), os.X_OK)
    assert "sync_interval: always" in NATS_CONFIG.read_text()


async def test_embedded_nats_keeps_stream_messages_across_restart(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedNats(tmp_path / "nats", port=port) as server:
        assert server.url == f"nats://127.0.0.1:{port}"
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["t.>"])
        ack = await js.publish("t.one", b"kept")
        await nc.close()
        process = server._process
    assert process is not None and process.returncode is not None  # stopped and reaped

    with EmbeddedNats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        message = await nc.jetstream().get_msg("T", ack.seq)
        await nc.close()
    assert message.data == b"kept"
    assert "Server is ready" in (tmp_path / "nats" / "nats-server.log").read_text()


def test_embedded_nats_does_not_mistake_another_server_for_its_own(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "a") as first:
        second = EmbeddedNats(tmp_path / "b", port=first.port, startup_timeout=5)
        try:
            with pytest.raises(RuntimeError, match="address already in use"):
                second.start()
        finally:
            second.stop()


async def test_embedded_postgres_serves_sql_and_keeps_tables_across_restart(
    tmp_path: Path,
) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as server:
        url = server.url()
        assert make_url(url).database == "minqing"
        assert await _scalar(url, "select 1") == 1
        await _execute(url, "create table kept (v text)", "insert into kept values ('yes')")
        pid = server.pid
    assert pid is not None
    with pytest.raises(ProcessLookupError):  # exited and reaped, not left a zombie
        os.kill(pid, 0)

    with EmbeddedPostgres(tmp_path / "pg") as server:
        assert await _scalar(server.url(), "select v from kept") == "yes"


async def test_embedded_postgres_recovers_after_the_postmaster_is_killed(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg").start()
    try:
        await _execute(server.url(), "create table kept (v int)", "insert into kept values (7)")
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 5  # no minute-long pg_ctl wait on a dead postmaster
    assert not process_alive(pid)

    with EmbeddedPostgres(tmp_path / "pg") as server:
        assert await _scalar(server.url(), "select v from kept") == 7


async def test_ensure_database_is_idempotent(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as server:
        url = server.url("fresh_db")
        ensure_database(url)
        ensure_database(url)
        count = await _scalar(
            server.url("postgres"), "select count(*) from pg_database where datname = 'fresh_db'"
        )
        assert count == 1
        assert await _scalar(url, "select current_database()") == "fresh_db"


def test_docker_available_is_a_quick_bool(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(docker_available(), bool)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    started = time.monotonic()
    assert docker_available(timeout=1) is False
    assert time.monotonic() - started < 3


def _listening(pid: int) -> list[tuple[str, int]]:
    """The TCP addresses ``pid`` listens on."""
    connections = psutil.Process(pid).net_connections(kind="inet")
    return [(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]


def test_embedded_nats_listens_on_loopback_only(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "nats") as server:
        assert server.pid is not None
        assert _listening(server.pid) == [("127.0.0.1", server.port)]


def test_embedded_postgres_listens_on_its_unix_socket_only(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as server:
        assert server.pid is not None
        assert _listening(server.pid) == []
        assert make_url(server.url()).query["host"] == str(tmp_path / "pg")


def test_a_data_dir_has_one_owner_at_a_time(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg"), pytest.raises(RuntimeError, match="in use"):
        EmbeddedPostgres(tmp_path / "pg").start()


OWNER = """
import sys, time
from pathlib import Path
from minqing.shared.embedded import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1])).start()
print(server.pid, server.url(), flush=True)
time.sleep(600)
"""


def test_a_postmaster_left_by_a_killed_owner_is_stopped_and_the_data_kept(
    tmp_path: Path,
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "pg")], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    orphan, url = owner.stdout.readline().split()
    try:
        run_sync(lambda: _execute(url, "create table kept (v int)", "insert into kept values (3)"))
        owner.kill()  # SIGKILL: no clean-up runs, its postmaster keeps running
        owner.wait()
        assert process_alive(int(orphan))

        with EmbeddedPostgres(tmp_path / "pg") as server:
            assert not process_alive(int(orphan))
            assert run_sync(lambda: _scalar(server.url(), "select v from kept")) == 3
            pid = server.pid
        assert pid is not None and not process_alive(pid)
        with EmbeddedPostgres(tmp_path / "pg") as server:  # and again, in the same process
            assert run_sync(lambda: _scalar(server.url(), "select v from kept")) == 3
    finally:
        owner.kill()
        owner.wait()
        if process_alive(int(orphan)):
            os.kill(int(orphan), signal.SIGKILL)
