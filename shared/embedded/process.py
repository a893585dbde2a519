"""What the embedded servers share: a start/stop/``with`` shape, and plain OS process helpers.

Only our own processes are touched: children we started, or a postmaster recorded in a data dir
that we hold the lock of.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Self

import psutil  # type: ignore[import-untyped]

STOP_TIMEOUT_SECONDS = 10.0
_PR_SET_CHILD_SUBREAPER = 36


class ServerProcess:
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


class ChildServer(ServerProcess):
    """A server binary we start ourselves (nats-server, caddy): in its own session (a Ctrl-C
    in the terminal reaches `minqing up`, which stops it), its output appended to
    ``log_path``; stopped with SIGTERM, then SIGKILL, and always reaped."""

    log_path: Path
    _process: subprocess.Popen[bytes] | None = None
    _log_offset = 0  # where this run's lines start in the log

    @property
    def pid(self) -> int | None:
        """The server's pid while started."""
        return None if self._process is None else self._process.pid

    def _launch(
        self, command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self._process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def _logged(self) -> str:
        """What this run has written to the log so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def _fail(self, reason: str) -> NoReturn:
        """Raise a startup error that carries the server log."""
        raise RuntimeError(f"{reason}; log {self.log_path}:\n{tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM (both servers' graceful stop), wait, SIGKILL if needed; always reap."""
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


class DataDirInUse(RuntimeError):
    """Another process holds a data dir's lock: one owner at a time."""


def hold_lock(lock_file: Path, data_dir: Path) -> IO[bytes]:
    """Take ``lock_file``'s exclusive lock for ``data_dir`` (released by the OS if we die),
    or raise ``DataDirInUse`` at once."""
    handle = lock_file.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(f"{data_dir} is in use by another process") from None
    return handle


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie has exited: only its status is left)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def command_line(pid: int) -> list[str]:
    """The command line of a running process, or an empty list."""
    try:
        return list(psutil.Process(pid).cmdline())
    except psutil.Error:
        return []


def child_pids() -> set[int]:
    """The pids of this process's direct children."""
    return {child.pid for child in psutil.Process().children()}


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our exited child; harmless otherwise."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pid: int, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Wait until ``pid`` has exited (reaping it if ours), SIGKILLing it after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        reap(pid)
        if not process_alive(pid):
            reap(pid)  # it may have exited just after the first: no zombie is left behind
            return
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)


def interrupt_and_wait(pid: int) -> None:
    """SIGINT (PostgreSQL's fast shutdown, what `pg_ctl stop` sends), then wait until gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    wait_gone(pid)


@contextlib.contextmanager
def adopting_orphans() -> Iterator[None]:
    """While inside, orphaned descendants become our children (Linux), so we can stop and reap
    a server that a short-lived launcher (such as `pg_ctl start`) forked."""
    if sys.platform != "linux":
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
