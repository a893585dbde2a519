"""A NATS cluster of real nats-server processes on loopback, for tests of replicated streams.

Each node has its own client and route port and store dir; the context waits until the
cluster has a JetStream meta leader, and stops (then kills, by the PIDs it started) every
node when it ends. A test may kill a node (SIGKILL, as a crash) and start it again on the
same ports and store, and ask which node leads a stream.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats

from minqing.shared.embedded.nats import jetstream_answers, nats_server_binary
from minqing.shared.service.infra import free_port, run_sync
from tests.support.netns import Host

READY_WITHIN = 30.0


@dataclass
class Node:
    name: str
    home: Path
    port: int
    route: int
    host: Host | None = None  # a host of its own (tests.support.netns), else this machine
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.host.address if self.host else "127.0.0.1"

    @property
    def url(self) -> str:
        return f"nats://{self.address}:{self.port}"

    def start(self) -> None:
        argv = [str(nats_server_binary()), "-c", str(self.home / "nats.conf")]
        with (self.home / "nats.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.host.command(*argv) if self.host else argv,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        """SIGKILL, as a crash: the node's store stays for a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return (self.home / "nats.log").read_text(errors="replace")


@dataclass
class Cluster:
    nodes: list[Node] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """All the nodes, as a client's server list (nats-py takes a comma-separated one)."""
        return ",".join(self.urls)

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def stream_leader(self, stream: str, *, not_of: str | None = None) -> str:
        """The name of the node leading ``stream`` now, asked of a running node (not of the
        node named ``not_of``: one cut off, say)."""
        url = next(node.url for node in self.nodes if node.running and node.name != not_of)

        async def ask() -> str:
            connection = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
            try:
                info = await connection.jetstream().stream_info(stream)
                assert info.cluster is not None and info.cluster.leader, info
                return str(info.cluster.leader)
            finally:
                await connection.close()

        return run_sync(ask)

    def replicas_current(self, stream: str) -> bool:
        """Every copy of ``stream`` is current, with no lag behind its leader."""
        url = next(node.url for node in self.nodes if node.running)

        async def ask() -> bool:
            connection = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
            try:
                info = await connection.jetstream().stream_info(stream)
                peers = (info.cluster.replicas or []) if info.cluster else []
                return len(peers) == len(self.nodes) - 1 and all(
                    peer.current and not peer.lag for peer in peers
                )
            finally:
                await connection.close()

        return run_sync(ask)

    def wait_ready(self, within: float = READY_WITHIN) -> None:
        deadline = time.monotonic() + within
        running = [node for node in self.nodes if node.process is not None]
        while not all(_ready(node.url) for node in running):
            if time.monotonic() > deadline or any(not node.running for node in running):
                logs = "\n".join(node.log() for node in self.nodes)
                raise RuntimeError("the NATS cluster did not become ready:\n" + logs)
            time.sleep(0.2)


def _config(node: Node, nodes: list[Node]) -> str:
    others = ", ".join(f'"nats://{n.address}:{n.route}"' for n in nodes if n is not node)
    return f"""
server_name: {node.name}
listen: "{node.address}:{node.port}"
jetstream {{ store_dir: "{node.home / "store"}" }}
cluster {{
  name: minqing-test
  listen: "{node.address}:{node.route}"
  routes: [{others}]
}}
"""


def _ready(url: str) -> bool:
    return run_sync(lambda: jetstream_answers(url))


@contextlib.contextmanager
def nats_cluster(
    directory: Path, nodes: int = 3, hosts: list[Host] | None = None
) -> Iterator[Cluster]:
    """``nodes`` servers on this machine's loopback, or one on each of ``hosts``."""
    if hosts is None:
        made = [
            Node(f"n{n}", directory / f"n{n}", free_port(), free_port())
            for n in range(1, nodes + 1)
        ]
    else:  # each host has addresses of its own: the usual ports
        made = [Node(f"n{n}", directory / f"n{n}", 4222, 6222, h) for n, h in enumerate(hosts, 1)]
    cluster = Cluster(made)
    try:
        for node in cluster.nodes:
            node.home.mkdir(parents=True)
            (node.home / "nats.conf").write_text(_config(node, cluster.nodes))
            node.start()
        cluster.wait_ready()
        yield cluster
    finally:
        for node in cluster.nodes:
            if node.running:
                assert node.process is not None
                node.process.terminate()
        for node in cluster.nodes:
            node.stop()
