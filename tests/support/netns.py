"""Hosts of their own on one machine: network namespaces joined by veth links to a switch
(a bridge in a namespace of its own), so a test can cut one host off and heal it.

The machine itself (where the test, the services and PostgreSQL run) is joined to the same
switch, so it reaches every host; cutting a host's link cuts it off from the other hosts
and from the machine alike, as a pulled cable would. Needs root and ``ip`` (iproute2);
every namespace and link made is deleted when the context ends.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass


def available() -> str | None:
    """Why hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's ip"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no interface of the machine uses."""
    used = subprocess.run(
        ["ip", "-o", "-4", "addr"], check=True, capture_output=True, text=True
    ).stdout
    while True:
        subnet = ipaddress.IPv4Network(
            f"10.{secrets.randbelow(200) + 50}.{secrets.randbelow(250)}.0/24"
        )
        first_three = ".".join(str(subnet.network_address).split(".")[:3])
        if f"inet {first_three}." not in used:
            return subnet


@dataclass
class Host:
    name: str  # the namespace
    address: str
    _switch_end: str
    _switch: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run on this host (``ip netns exec`` execs it: the PID is its own)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """Pull the cable: nothing reaches this host or leaves it (no reset is sent)."""
        _ip("-n", self._switch, "link", "set", self._switch_end, "down")

    def heal(self) -> None:
        _ip("-n", self._switch, "link", "set", self._switch_end, "up")


@contextlib.contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    tag = secrets.token_hex(3)
    switch = f"mq{tag}sw"
    subnet = _free_subnet()
    addresses = list(subnet.hosts())
    made: list[str] = []  # namespaces
    machine_end = f"mq{tag}m"
    try:
        _ip("netns", "add", switch)
        made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        # the machine's own link to the switch
        _ip("link", "add", machine_end, "type", "veth", "peer", "name", f"mq{tag}ms")
        _ip("link", "set", f"mq{tag}ms", "netns", switch)
        _ip("-n", switch, "link", "set", f"mq{tag}ms", "master", "br0", "up")
        _ip("addr", "add", f"{addresses[-1]}/{subnet.prefixlen}", "dev", machine_end)
        _ip("link", "set", machine_end, "up")
        made_hosts = []
        for n in range(1, count + 1):
            name, inside, outside = f"mq{tag}h{n}", f"mq{tag}h{n}", f"mq{tag}s{n}"
            _ip("netns", "add", name)
            made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("link", "add", inside, "netns", name, "type", "veth", "peer", "name", outside)
            _ip("link", "set", outside, "netns", switch)
            _ip("-n", switch, "link", "set", outside, "master", "br0", "up")
            address = str(addresses[n - 1])
            _ip("-n", name, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", inside)
            _ip("-n", name, "link", "set", inside, "up")
            made_hosts.append(Host(name, address, outside, switch))
        yield made_hosts
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", machine_end)
        for name in reversed(made):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", name)
