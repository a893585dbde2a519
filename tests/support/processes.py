"""Services as real OS processes for end-to-end tests: start, wait ready, kill, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import SERVICES, ServiceName, Settings
from tests.support.identity import enrol_at

T = TypeVar("T")


class ServiceProcess:
    """One service run as ``python -m minqing serve <name>``, logging to a file."""

    def __init__(self, name: ServiceName, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.port = int(env[f"MINQING_{name.upper()}_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_within: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "minqing", "serve", self.name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(ready_within)

    def _wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {within}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM without waiting."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        self._signal(signal.SIGTERM, wait=15.0)

    def _signal(self, signum: int, wait: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def poll(probe: Callable[[], T], ok: Callable[[T], bool], within: float = 20.0) -> T:
    """Call ``probe`` until ``ok`` holds for its result; fail with the last value if never."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within}s; last value: {value!r}")
        time.sleep(0.05)


def process_env(settings: Settings) -> dict[str, str]:
    """Environment for service processes: the test's settings and a free port each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINQING_")}
    env.update(
        {
            "MINQING_NATS_URL": settings.nats_url,
            "MINQING_DATABASE_URL": settings.database_url,
            "MINQING_STREAM_NAME": settings.stream_name,
            "MINQING_SUBJECT_PREFIX": settings.subject_prefix,
            "MINQING_INGRESS_STREAM_NAME": settings.ingress_stream_name,
            "MINQING_INGRESS_SUBJECT_PREFIX": settings.ingress_subject_prefix,
            "MINQING_OUTCOMES_STREAM_NAME": settings.outcomes_stream_name,
            "MINQING_OUTCOMES_SUBJECT_PREFIX": settings.outcomes_subject_prefix,
            "MINQING_DLQ_STREAM_NAME": settings.dlq_stream_name,
            "MINQING_DLQ_SUBJECT_PREFIX": settings.dlq_subject_prefix,
            "MINQING_RELAY_POLL_SECONDS": str(settings.relay_poll_seconds),
            "MINQING_CONSUMER_ACK_WAIT_SECONDS": str(settings.consumer_ack_wait_seconds),
            "MINQING_CONSUMER_BATCH_SIZE": str(settings.consumer_batch_size),
            "MINQING_DUPLICATE_THRESHOLD": str(settings.duplicate_threshold),
            "MINQING_RATE_LIMIT_PER_PRINCIPAL": settings.rate_limit_per_principal,
            "MINQING_RATE_LIMIT_PER_SOURCE": settings.rate_limit_per_source,
            "MINQING_STREAM_REPLICAS": str(settings.stream_replicas),
            "MINQING_NATS_PING_SECONDS": str(settings.nats_ping_seconds),
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name in SERVICES:
        env[f"MINQING_{name.upper()}_PORT"] = str(free_port())
    return env


@contextmanager
def running_services(settings: Settings, log_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    """All four services as processes; each is stopped (and reaped) afterwards."""
    env = process_env(settings)
    enrol_at(settings.database_url)  # the tests' people, who act on the services
    services: dict[str, ServiceProcess] = {n: ServiceProcess(n, env, log_dir) for n in SERVICES}
    try:
        for service in services.values():
            service.start()
        yield services
    finally:
        for service in services.values():
            service.terminate()  # all at once: each takes about a second to drain
        for service in services.values():
            service.stop()


@contextmanager
def running_replicas(
    settings: Settings, log_dir: Path, replicas: int = 2
) -> Iterator[dict[str, list[ServiceProcess]]]:
    """``replicas`` processes of each service on one database and stream, each on a port
    (and log folder, ``r1``, ``r2``...) of its own; all stopped (and reaped) afterwards."""
    env = process_env(settings)
    enrol_at(settings.database_url)
    services: dict[str, list[ServiceProcess]] = {}
    for n in range(1, replicas + 1):
        own = dict(env) | {f"MINQING_{name.upper()}_PORT": str(free_port()) for name in SERVICES}
        (log_dir / f"r{n}").mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            services.setdefault(name, []).append(ServiceProcess(name, own, log_dir / f"r{n}"))
    every = [replica for group in services.values() for replica in group]
    try:
        for replica in every:
            replica.start()
        yield services
    finally:
        for replica in every:
            replica.terminate()
        for replica in every:
            replica.stop()
