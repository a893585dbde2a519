"""`minqing up` run as a new user runs it, watched from outside: its process tree, its output.

Used by tests/e2e: `up` from the repository (test_up.py) and from a fresh virtual environment
with a regular install (test_installed.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from minqing.shared.embedded.nats import admin_credentials
from minqing.shared.embedded.postgres import embedded_database
from minqing.shared.service.infra import free_port, port_is_free, run_sync
from minqing.shared.service.settings import SERVICES
from tests.support.identity import enrol_at

READY_WITHIN = 60.0
EXIT_WITHIN = 30.0
STREAM = "MINQING_EVENTS"  # the Settings default: the environment sets no MINQING_STREAM_NAME


def alive(process: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; only its exit status is left)."""
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


async def _stream_messages(nats_url: str, credentials: Path | None) -> int:
    import nats

    from minqing.shared.messaging.access import ADMIN, connect_options, service_inbox

    options = connect_options(credentials, service_inbox(ADMIN))
    nc = await nats.connect(nats_url, connect_timeout=2, allow_reconnect=False, **options)
    try:
        info = await nc.jetstream().stream_info(STREAM)
        return int(info.state.messages)
    finally:
        await nc.close()


class Up:
    """`minqing up` in its own session, output in a file.

    By default `python -m minqing up --data-dir <tmp>/data` from ``tmp_path``;
    ``command``, ``cwd`` and ``env`` (before the MINQING_* variables are dropped) replace those.
    """

    def __init__(
        self,
        tmp_path: Path,
        command: list[str] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cwd = cwd or tmp_path
        self.data_dir = tmp_path / "data"
        self.command = command or [
            *(sys.executable, "-m", "minqing", "up"),
            *("--data-dir", str(self.data_dir)),
        ]
        self.log_path = tmp_path / "up.log"
        self.ports = {name: free_port() for name in SERVICES}
        self.url = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        # A new user's shell: no MINQING_* configuration (so no NATS or database URL), and
        # not the test session's unbuffered output either. Only the HTTP ports are chosen,
        # so that the run cannot collide with anything else on this machine.
        self.env = {
            k: v
            for k, v in (os.environ if env is None else env).items()
            if not k.startswith("MINQING_") and k != "PYTHONUNBUFFERED"
        }
        self.env.update({f"MINQING_{n.upper()}_PORT": str(p) for n, p in self.ports.items()})
        # The front door: the one address people use (the services' ports stay behind it).
        self.front_port = free_port()
        self.front = f"http://127.0.0.1:{self.front_port}"
        self.env["MINQING_FRONT_PORT"] = str(self.front_port)
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, psutil.Process] = {}  # every descendant ever observed
        self._log_offset = 0

    # ----------------------------------------------------------------------- start and watch

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        """What the current run has printed so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        """The process tree under `up` right now, remembered for the final clean-up."""
        assert self.process is not None
        try:
            family = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in family:
            self.seen.setdefault(child.pid, child)
        return list(family)

    def wait_ready(self) -> float:
        """Seconds until every service's /readyz answers 200."""
        assert self.process is not None
        started = time.monotonic()
        pending = set(SERVICES)
        while pending:
            if self.process.poll() is not None:
                pytest.fail(f"`up` exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() - started > READY_WITHIN:
                pytest.fail(f"not ready within {READY_WITHIN}s: {pending}\n{self.output()}")
            for name in sorted(pending):
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{self.url[name]}/readyz", timeout=1).status_code == 200:
                        pending.discard(name)
            time.sleep(0.1)
        while not answers(f"{self.front}/"):  # the front door, started before the services
            if time.monotonic() - started > READY_WITHIN:
                pytest.fail(f"the front door does not answer at {self.front}\n{self.output()}")
            time.sleep(0.1)
        self.descendants()
        self.enrol()
        return time.monotonic() - started

    def enrol(self) -> None:
        """The tests' people (tests.support.identity) in the database `up` runs on."""
        # --data-dir, else MINQING_DATA_DIR, else .minqing where `up` runs
        data_dir = self.data_dir if "--data-dir" in self.command else None
        data_dir = data_dir or Path(self.env.get("MINQING_DATA_DIR", self.cwd / ".minqing"))
        with embedded_database(data_dir / "postgres") as url:
            enrol_at(url)

    def nats_url(self) -> str:
        found = re.search(r"embedded nats-server at (nats://\S+)", self.output())
        assert found, self.output()
        return found.group(1)

    def stream_messages(self) -> int:
        url = self.nats_url()
        credentials = admin_credentials(self.data_dir / "nats")  # the operator's key
        return run_sync(lambda: _stream_messages(url, credentials))

    # ------------------------------------------------------------------------------------ stop

    def stop(self, signum: signal.Signals, *, whole_group: bool) -> tuple[int, float]:
        """Signal `up`; assert it exits in time and leaves nothing running. Code and seconds."""
        assert self.process is not None
        nats_port = int(self.nats_url().rsplit(":", 1)[1])
        family = self.descendants()
        assert family, "`up` has no child processes"
        started = time.monotonic()
        if whole_group:  # what a terminal does on Ctrl-C: the foreground process group
            os.killpg(self.process.pid, signum)
        else:  # what `kill <pid>` does
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`up` still running {EXIT_WITHIN}s after {signum.name}:\n{self.output()}")
        elapsed = time.monotonic() - started

        left = [
            f"{p.pid} {' '.join(p.cmdline())[:120]}"
            for p in family
            if alive(p)  # cmdline of a live process; a race to exit just now is still a leak
        ]
        assert not left, f"still running after `up` exited: {left}\n{self.output()}"
        serving = [name for name, url in self.url.items() if answers(f"{url}/readyz")]
        assert not serving, f"still answering: {serving}"
        assert port_is_free(nats_port), f"NATS port {nats_port} still taken"
        assert port_is_free(self.front_port), f"front door port {self.front_port} still taken"
        # honcho SIGKILLs services still running 5 s after the first one stopped.
        assert "sending SIGKILL" not in self.output(), self.output()
        return code, elapsed

    def kill_everything(self) -> None:
        """Whatever happened: stop `up` (gently first), then SIGKILL anything it left, reap."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.descendants()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        leftovers = [p for p in self.seen.values() if alive(p)]
        for process in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(leftovers, timeout=10)
