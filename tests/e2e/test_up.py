"""`minqing up` as a new user runs it: embedded NATS and PostgreSQL, four services, stop, restart.

Nothing from the test session's servers is used: `up` must start its own nats-server and
PostgreSQL under the data dir, run the migrations, start the services, stop every process it
started on Ctrl-C (SIGINT to its process group, as a terminal sends it) and on SIGTERM, and
find the data again when run a second time on the same data dir.
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
from typing import Any

import httpx
import psutil
import pytest

from shared.infra import free_port, port_is_free, run_sync
from shared.settings import SERVICES
from tests.support.processes import poll

pytestmark = pytest.mark.e2e

READY_WITHIN = 60.0
EXIT_WITHIN = 30.0
STREAM = "MINQING_EVENTS"  # the Settings default: the environment sets no MINQING_STREAM_NAME
LOOP = ["issue.reported", "issue.assigned", "issue.resolved", "issue.lookback_passed"]


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


async def _stream_messages(nats_url: str) -> int:
    import nats

    nc = await nats.connect(nats_url, connect_timeout=2, allow_reconnect=False)
    try:
        info = await nc.jetstream().stream_info(STREAM)
        return int(info.state.messages)
    finally:
        await nc.close()


class Up:
    """`python -m shared.cli up --data-dir <dir>` in its own session, output in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.data_dir = tmp_path / "data"
        self.log_path = tmp_path / "up.log"
        self.ports = {name: free_port() for name in SERVICES}
        self.url = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        # A new user's shell: no MINQING_* configuration (so no NATS or database URL), and
        # not the test session's unbuffered output either. Only the HTTP ports are chosen,
        # so that the run cannot collide with anything else on this machine.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MINQING_") and k != "PYTHONUNBUFFERED"
        }
        self.env.update({f"MINQING_{n.upper()}_PORT": str(p) for n, p in self.ports.items()})
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, psutil.Process] = {}  # every descendant ever observed
        self._log_offset = 0

    # ----------------------------------------------------------------------- start and watch

    def start(self) -> None:
        command = [sys.executable, "-m", "shared.cli", "up", "--data-dir", str(self.data_dir)]
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                command,
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
        self.descendants()
        return time.monotonic() - started

    def nats_url(self) -> str:
        found = re.search(r"embedded nats-server at (nats://\S+)", self.output())
        assert found, self.output()
        return found.group(1)

    def stream_messages(self) -> int:
        url = self.nats_url()
        return run_sync(lambda: _stream_messages(url))

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


# ------------------------------------------------------------------------------ the matter


def history(up: Up, issue_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{up.url['projection']}/api/v1/issues/{issue_id}/history", timeout=5)
    return list(response.json()["events"]) if response.status_code == 200 else []


def types(up: Up, issue_id: str) -> list[str]:
    return [e["type"].removeprefix("minqing.") for e in history(up, issue_id)]


def projected(up: Up, issue_id: str) -> dict[str, Any]:
    response = httpx.get(f"{up.url['projection']}/api/v1/issues/{issue_id}", timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json())


def case(up: Up, issue_id: str) -> dict[str, Any]:
    response = httpx.get(f"{up.url['followup']}/api/v1/issues/{issue_id}", timeout=5)
    return dict(response.json()) if response.status_code == 200 else {}


def report(up: Up) -> str:
    body = {
        "title": "Nobody to harvest the rice",
        "description": "The family's working members cannot come home for the harvest.",
        "category": "farming_help",
        "village": "qizhuang",
        "source": "grid_center",
    }
    response = httpx.post(f"{up.url['intake']}/api/v1/reports", json=body, timeout=5)
    assert response.status_code == 201, response.text
    return str(response.json()["issue_id"])


def round_the_loop(up: Up) -> str:
    issue_id = report(up)
    poll(lambda: types(up, issue_id), lambda got: got == LOOP[:2])
    assigned = poll(lambda: case(up, issue_id), lambda c: c.get("status") == "assigned")
    resolution = httpx.post(
        f"{up.url['followup']}/api/v1/issues/{issue_id}/resolution",
        json={"unit": assigned["unit"], "summary": "Volunteers harvested it", "resolved_by": "li"},
        timeout=5,
    )
    assert resolution.status_code == 201, resolution.text
    lookback = httpx.post(
        f"{up.url['followup']}/api/v1/issues/{issue_id}/lookback",
        json={"outcome": "passed", "visitor": "grid-worker-3", "notes": "Rice is in"},
        timeout=5,
    )
    assert lookback.status_code == 201, lookback.text
    poll(lambda: types(up, issue_id), lambda got: got == LOOP)
    return issue_id


# ------------------------------------------------------------------------------------ test


def test_up_runs_stops_and_restarts_the_whole_system(tmp_path: Path) -> None:
    up = Up(tmp_path)
    timings: dict[str, float] = {}
    try:
        # First run: nothing exists yet.
        up.start()
        timings["first start"] = up.wait_ready()
        printed = up.output()
        for name, url in up.url.items():
            assert f"{name:>10}: {url}" in printed, printed
        if not port_is_free(4222):  # here the system's nats-server has it
            assert "port 4222 is taken, using free port" in printed, printed
        assert "embedded nats-server at nats://127.0.0.1:" in printed, printed
        assert "PostgreSQL: embedded at" in printed, printed
        assert (up.data_dir / "nats" / "jetstream").is_dir()
        assert (up.data_dir / "postgres" / "PG_VERSION").is_file()
        names = {" ".join(p.cmdline()) for p in up.descendants() if alive(p)}
        assert any("nats-server" in n for n in names), names
        assert any("postgres" in n for n in names), names
        for service in SERVICES:
            assert any(f"shared.cli serve {service}" in n for n in names), (service, names)

        started = time.monotonic()
        issue_id = round_the_loop(up)
        timings["loop"] = time.monotonic() - started
        first = history(up, issue_id)
        assert projected(up, issue_id)["status"] == "closed"
        assert [e["type"].removeprefix("minqing.") for e in first] == LOOP
        messages = up.stream_messages()
        assert messages >= len(LOOP)

        # Ctrl-C.
        code, timings["stop on SIGINT"] = up.stop(signal.SIGINT, whole_group=True)
        assert code == 130, up.output()
        assert "Traceback" not in up.output(), up.output()

        # Second run on the same data dir: the matter is still there, and the system works.
        up.start()
        timings["restart"] = up.wait_ready()
        issue = projected(up, issue_id)
        assert issue["status"] == "closed"
        again = history(up, issue_id)
        assert [e["id"] for e in again] == [e["id"] for e in first]
        assert case(up, issue_id).get("status") == "closed"
        assert up.stream_messages() == messages
        newcomer = report(up)
        poll(lambda: types(up, newcomer), lambda got: got == LOOP[:2])

        # SIGTERM, as `kill <pid>` sends it.
        code, timings["stop on SIGTERM"] = up.stop(signal.SIGTERM, whole_group=False)
        assert code == 143, up.output()
        assert "Traceback" not in up.output(), up.output()
    finally:
        up.kill_everything()
        print("timings:", {k: round(v, 2) for k, v in timings.items()})
