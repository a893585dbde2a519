"""The stack under test: embedded NATS and PostgreSQL, and the processes the benchmark starts.

Every process is started here, remembered by PID, and stopped by that PID in ``close()``:
nothing is ever stopped by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import nats
import psutil  # type: ignore[import-untyped]
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

# The one place the embedded servers are imported from: if they move, change this line.
from minqing.shared.embedded import EmbeddedNats, EmbeddedPostgres
from minqing.shared.service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 20.0
READY_TIMEOUT_SECONDS = 60.0
RSS_SAMPLE_SECONDS = 0.2
SETTINGS = Settings()  # defaults, plus any MINQING_* the caller exported (batch size, ...)
# The load comes from one caller (or one address) as fast as it can go: the services'
# request budgets (MINQING_RATE_LIMIT_*, 600 a minute per principal) would measure the
# limit, not the service. Every service the benchmarks start runs without them.
UNTHROTTLED = {
    "MINQING_RATE_LIMIT_PER_PRINCIPAL": "",
    "MINQING_RATE_LIMIT_PER_SOURCE": "",
    "MINQING_RATE_LIMIT_ANONYMOUS": "",
}


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def asyncpg_dsn(sqlalchemy_url: str) -> dict[str, Any]:
    """asyncpg.connect() keyword arguments for a ``postgresql+asyncpg://`` URL."""
    parts = urlsplit(sqlalchemy_url)
    query = parse_qs(parts.query)
    return {
        "user": parts.username or "postgres",
        "password": parts.password,
        "database": parts.path.lstrip("/"),
        "host": query["host"][0] if "host" in query else (parts.hostname or "127.0.0.1"),
        "port": parts.port or 5432,
    }


class Failed(RuntimeError):
    """A figure could not be measured; the message says why."""


# ------------------------------------------------------------------------------ processes


@dataclass
class Process:
    """A child process the benchmark started, with its log file."""

    label: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            raise Failed(
                f"{self.label} exited with code {self.popen.returncode}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self) -> None:
        """SIGTERM this PID, wait, SIGKILL it if it does not go; always reap it."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait()


class RssSampler:
    """Samples the resident memory of watched processes (with their children) every 0.2 s."""

    def __init__(self) -> None:
        self.peak_mb: dict[str, float] = {}
        self._watched: dict[str, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def watch(self, label: str, pid: int) -> None:
        with self._lock:
            self._watched[label] = psutil.Process(pid)

    def unwatch(self, label: str) -> None:
        self.sample()
        with self._lock:
            self._watched.pop(label, None)

    def sample(self) -> None:
        with self._lock:
            watched = list(self._watched.items())
        for label, process in watched:
            try:
                rss = process.memory_info().rss
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
            except psutil.Error:
                continue
            mb = rss / 1_000_000
            with self._lock:
                self.peak_mb[label] = max(self.peak_mb.get(label, 0.0), mb)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self.sample()

    @property
    def thread_id(self) -> int | None:
        """The sampling thread's native id (its CPU is not the load generator's)."""
        return self._thread.native_id

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------- stack


@dataclass
class Stack:
    """Embedded NATS and PostgreSQL in a temp dir, and every process started against them."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="minqing-bench-")))
    nats_server: Any = None
    postgres: Any = None
    processes: list[Process] = field(default_factory=list)
    rss: RssSampler = field(default_factory=RssSampler)

    def start(self) -> Stack:
        self.nats_server = EmbeddedNats(self.root / "nats").start()
        check_sync_always(self.nats_server)
        self.postgres = EmbeddedPostgres(self.root / "postgres", database="bench").start()
        return self

    @property
    def nats_url(self) -> str:
        return str(self.nats_server.url)

    def database(self, name: str) -> str:
        """A fresh, migrated database (``minqing migrate``); its SQLAlchemy URL."""
        url = str(self.postgres.url(name))
        log = self.root / f"migrate-{name}.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [sys.executable, "-m", "minqing", "migrate"],
                env={**os.environ, "MINQING_DATABASE_URL": url},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                check=False,
            )
        if result.returncode != 0:
            raise Failed(f"minqing migrate failed; log {log}:\n{log.read_text()[-2000:]}")
        return url

    def start_process(
        self, label: str, argv: Sequence[str], env: Mapping[str, str], port: int | None = None
    ) -> Process:
        log_path = self.root / f"{label}-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                list(argv),
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,  # a Ctrl-C reaches us; we stop it by PID
            )
        process = Process(label, popen, log_path, port)
        self.processes.append(process)
        return process

    def start_service(
        self,
        service: str,
        database_url: str,
        extra_env: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> Process:
        """``python -m minqing serve <service>`` on a free port (MINQING_*)."""
        port = free_port()
        env = {
            "MINQING_NATS_URL": self.nats_url,
            "MINQING_DATABASE_URL": database_url,
            "MINQING_HOST": "127.0.0.1",
            f"MINQING_{service.upper()}_PORT": str(port),
            # The load's titles differ only by a number: as duplicates they would all join
            # one matter. Detection still runs (lock and candidate query) but never matches.
            "MINQING_DUPLICATE_THRESHOLD": "101",
            **UNTHROTTLED,
        }
        env.update(extra_env or {})
        argv = [
            sys.executable,
            "-m",
            "minqing",
            "serve",
            service,
            "--log-level",
            "warning",
        ]
        process = self.start_process(label or service, argv, env, port)
        self.rss.watch(label or service, process.pid)
        return process

    def stop(self, process: Process) -> None:
        self.rss.unwatch(process.label)
        process.stop()

    def close(self) -> None:
        """Stop every process we started (by PID), then the servers; remove the temp dir."""
        try:
            for process in reversed(self.processes):
                with contextlib.suppress(Exception):
                    process.stop()
            self.rss.close()
        finally:
            try:
                if self.postgres is not None:
                    self.postgres.stop()
            finally:
                if self.nats_server is not None:
                    self.nats_server.stop()
                shutil.rmtree(self.root, ignore_errors=True)


def check_sync_always(server: Any) -> None:
    """Refuse to measure unless the nats-server runs with ``sync_interval: always``."""
    command = list(server.command()) if hasattr(server, "command") else []
    config = Path(command[command.index("-c") + 1]) if "-c" in command else None
    if config is None or "sync_interval: always" not in config.read_text():
        raise Failed(f"nats-server config {config} does not set `sync_interval: always`")


async def wait_ready(process: Process) -> None:
    """Poll ``GET /readyz`` until 200; fail with the log if the process dies or times out."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=process.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            process.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise Failed(
        f"{process.label} not ready after {READY_TIMEOUT_SECONDS:.0f}s; log:\n{process.log_tail()}"
    )


# ----------------------------------------------------------------------------------- NATS


async def connect(url: str) -> Client:
    return await nats.connect(url, max_reconnect_attempts=3)


def stream_config() -> StreamConfig:
    """The canonical stream as the README describes it (file storage, kept, deduplicated)."""
    return StreamConfig(
        name=SETTINGS.stream_name,
        subjects=[f"{SETTINGS.subject_prefix}.>"],
        storage=StorageType.FILE,
        max_age=0,
        duplicate_window=SETTINGS.duplicate_window_seconds,
    )


async def fresh_stream(nc: Client, create: bool = True) -> None:
    """Delete the canonical stream if it exists, and create it empty unless told not to."""
    js = nc.jetstream()
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(SETTINGS.stream_name)
    if create:
        await js.add_stream(stream_config())


def subject(short_type: str) -> str:
    """The subject of an event type such as ``issue.reported``."""
    return f"{SETTINGS.subject_prefix}.{short_type}"
