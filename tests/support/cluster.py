"""A NATS cluster of real nats-server processes on loopback, for tests of replicated streams.

Each node has its own client and route port and store dir; the context waits until the
cluster has a JetStream meta leader, and stops (then kills, by the PIDs it started) every
node when it ends.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from minqing.shared.embedded.nats import jetstream_answers, nats_server_binary
from minqing.shared.service.infra import free_port, run_sync

READY_WITHIN = 30.0


@dataclass
class Cluster:
    urls: list[str]

    @property
    def url(self) -> str:
        """All the nodes, as a client's server list (nats-py takes a comma-separated one)."""
        return ",".join(self.urls)


def _config(name: str, port: int, route: int, routes: list[int], store: Path) -> str:
    others = ", ".join(f'"nats://127.0.0.1:{r}"' for r in routes if r != route)
    return f"""
server_name: {name}
listen: "127.0.0.1:{port}"
jetstream {{ store_dir: "{store}" }}
cluster {{
  name: minqing-test
  listen: "127.0.0.1:{route}"
  routes: [{others}]
}}
"""


def _ready(url: str) -> bool:
    return run_sync(lambda: jetstream_answers(url))


@contextlib.contextmanager
def nats_cluster(directory: Path, nodes: int = 3) -> Iterator[Cluster]:
    ports = [free_port() for _ in range(nodes)]
    routes = [free_port() for _ in range(nodes)]
    started: list[subprocess.Popen[bytes]] = []
    try:
        for n, (port, route) in enumerate(zip(ports, routes, strict=True), start=1):
            home = directory / f"n{n}"
            home.mkdir(parents=True)
            config = home / "nats.conf"
            config.write_text(_config(f"n{n}", port, route, routes, home / "store"))
            with (home / "nats.log").open("ab") as log:
                started.append(
                    subprocess.Popen(
                        [str(nats_server_binary()), "-c", str(config)],
                        stdout=log,
                        stderr=log,
                        stdin=subprocess.DEVNULL,
                    )
                )
        urls = [f"nats://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + READY_WITHIN
        while not all(_ready(url) for url in urls):
            if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                logs = [(directory / f"n{n}" / "nats.log").read_text() for n in range(1, nodes + 1)]
                raise RuntimeError("the NATS cluster did not become ready:\n" + "\n".join(logs))
            time.sleep(0.2)
        yield Cluster(urls)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
