"""An embedded PostgreSQL (from the pgserver wheel, public API only) on a Unix socket.

One process at a time owns a data dir: it holds an exclusive lock beside the data dir while the
server runs. So a postmaster still running on the data dir when we take the lock was left by an
owner that died (SIGKILL); we stop it and start our own, which is our child and which we stop.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self
from urllib.parse import quote

from minqing.shared.embedded.process import (
    DataDirInUse,
    ServerProcess,
    adopting_orphans,
    child_pids,
    command_line,
    hold_lock,
    interrupt_and_wait,
    process_alive,
    reap,
)
from minqing.shared.service.infra import ensure_database

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer


def postgres_socket_url(socket_dir: Path, database: str, user: str = "postgres") -> str:
    """A SQLAlchemy asyncpg URL for a server listening on a Unix socket in ``socket_dir``."""
    return f"postgresql+asyncpg://{user}@/{database}?host={quote(str(socket_dir), safe='')}"


def _lock(data_dir: Path) -> IO[bytes]:
    """Take the data dir's exclusive lock (a file beside it), or raise ``DataDirInUse``."""
    return hold_lock(data_dir.with_name(f".{data_dir.name}.lock"), data_dir)


def _clear_stale_state(pgdata: Path) -> None:
    """Stop a postmaster a dead owner left running; drop a postmaster.pid nobody is behind.

    A zombie still "exists" for kill(pid, 0): PostgreSQL would refuse to start and pgserver
    would take the dead server for a running one.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if process_alive(pid) and str(pgdata) in command_line(pid):
        interrupt_and_wait(pid)  # an orphan of ours: we hold the lock, so its owner is gone
    reap(pid)
    if not process_alive(pid):
        pid_file.unlink(missing_ok=True)


def _import_pgserver() -> None:
    """Import pgserver without its warning about an unset XDG_RUNTIME_DIR (our lock suffices)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401


class EmbeddedPostgres(ServerProcess):
    """A PostgreSQL server from pgserver on a Unix socket; its data persists in ``data_dir``."""

    def __init__(self, data_dir: Path, database: str = "minqing") -> None:
        """Remember the data dir and the database to create; nothing starts yet."""
        self.data_dir = Path(data_dir).resolve()
        self.database = database
        self._server: PostgresServer | None = None
        self._lock: IO[bytes] | None = None

    def start(self) -> Self:
        """Start the server and create the default database if missing."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.data_dir)
        try:
            _clear_stale_state(self.data_dir)
            self._server = self._get_server()
            ensure_database(self.url())
        except BaseException:
            self.stop()
            raise
        return self

    def _get_server(self) -> PostgresServer:
        """pgserver's handle, started with us as the postmaster's parent so we can reap it."""
        _import_pgserver()
        from pgserver.postgres_server import PostgresServer, get_server

        before = child_pids()
        try:
            # We stop the server ourselves (cleanup_mode=None): pgserver would wait a minute in
            # `pg_ctl -w stop` on a killed postmaster, or never stop one a dead process shared.
            with adopting_orphans():
                server = get_server(self.data_dir, cleanup_mode=None)
                cached = server.get_postmaster_info().pid
                # pgserver's own check takes an unreaped zombie for a running server
                if cached is None or not process_alive(cached):
                    # pgserver cached the handle of a server we stopped: ask for a fresh one.
                    server = PostgresServer(self.data_dir, cleanup_mode=None)
            return server
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or failed while `pg_ctl -w start` waited: the
            # postmaster it forked is now our child, and pgserver has no handle to stop it.
            for pid in child_pids() - before:
                interrupt_and_wait(pid)
            raise

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
        """Stop the postmaster and wait until it is gone, drop pgserver's handle, unlock."""
        server, self._server = self._server, None
        lock, self._lock = self._lock, None
        try:
            if server is not None:
                pid = server.get_pid()
                try:
                    if pid is not None:
                        interrupt_and_wait(pid)
                finally:
                    server.cleanup()  # with cleanup_mode=None: only forgets our handle
        finally:
            if lock is not None:
                lock.close()


def running_url(data_dir: Path, database: str = "minqing") -> str | None:
    """The URL of the server another process (``minqing up``) runs on ``data_dir``, if one
    is running there: its socket is in the data dir's ``postmaster.pid``."""
    try:
        lines = (Path(data_dir) / "postmaster.pid").read_text().splitlines()
        pid, socket_dir = int(lines[0]), lines[4].strip()
    except (OSError, ValueError, IndexError):
        return None
    if not socket_dir or not process_alive(pid):
        return None
    return postgres_socket_url(Path(socket_dir), database)


@contextlib.contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """The URL of the embedded database in ``data_dir``: the running server's while
    ``minqing up`` holds it, else one started for the duration of the block."""
    data_dir = Path(data_dir).resolve()
    if not (data_dir / "PG_VERSION").is_file():
        raise FileNotFoundError(f"no embedded database in {data_dir}")
    try:
        lock = _lock(data_dir)
    except DataDirInUse:
        if (url := running_url(data_dir)) is None:
            raise
        yield url
        return
    lock.close()  # EmbeddedPostgres takes it again; a race with `up` fails it cleanly
    with EmbeddedPostgres(data_dir) as server:
        yield server.url()
