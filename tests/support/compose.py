"""deploy/compose.yaml brought up with podman-compose, in the order its depends_on says.

Podman here is 4.3.1: podman-compose ignores ``condition: service_healthy`` below podman 4.6
(it warns and starts the dependent at once), podman 4.3 fails to start a container whose
``--requires`` chain is longer than one step (the services require ``migrate``, which
requires ``postgres``), and no systemd runs health checks on their interval. So ``up``
reads the file's ``depends_on`` itself, starts the services in dependency order with
``podman-compose up -d --no-deps``, and before each step waits for the conditions the file
declares: ``service_healthy`` by running the container's own health check (``podman
healthcheck run``) until it passes, ``service_completed_successfully`` by waiting for the
one-shot to exit 0. On a current engine ``podman-compose up -d`` (or ``docker compose up
-d``) does the same by itself.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import containers

PODMAN_COMPOSE = Path(sys.executable).parent / "podman-compose"
READY_WITHIN = 300.0  # a first start on two shared cores: ten Python services, three NATS


@dataclass
class Compose:
    """One project of a compose file: its name, the variables it is given, its services."""

    file: Path
    project: str
    variables: Mapping[str, str]
    started: list[str] = field(default_factory=list)

    def run(self, *args: str, check: bool = True, timeout: float = 600.0) -> str:
        """``podman-compose -p PROJECT -f FILE ARGS``: its output (stdout)."""
        command = [str(PODMAN_COMPOSE), "-p", self.project, "-f", str(self.file), *args]
        result = subprocess.run(
            command,
            env=containers.environment(self.variables),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command[1:])} exited with {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def services(self) -> dict[str, dict[str, Any]]:
        """The services ``up`` starts (those of no profile), as podman-compose resolves them."""
        resolved = yaml.safe_load(self.run("config"))
        return dict(resolved["services"])

    def container(self, service: str) -> str:
        """The name of the (only) container of ``service``."""
        found = containers.podman(
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--filter",
            f"label=io.podman.compose.service={service}",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        assert len(found) == 1, f"{service}: containers {found}"
        return found[0]

    # ------------------------------------------------------------------------------------ up

    def up(self) -> None:
        """Every service, each once what it depends on meets the declared condition."""
        services = self.services()
        waiting = dict(services)
        met: set[tuple[str, str]] = set()
        while waiting:
            ready = [
                name
                for name, spec in waiting.items()
                if set(spec.get("depends_on") or {}) <= set(self.started)
            ]
            assert ready, f"a cycle in depends_on: {sorted(waiting)}"
            for name in ready:
                for dependency, need in (waiting[name].get("depends_on") or {}).items():
                    if (dependency, need["condition"]) not in met:
                        self._wait_for(dependency, need["condition"])
                        met.add((dependency, need["condition"]))
            self.run("up", "-d", "--no-deps", *ready)
            self.started += ready
            for name in ready:
                del waiting[name]

    def _wait_for(self, service: str, condition: str) -> None:
        if condition == "service_healthy":
            self.wait_healthy(service)
        elif condition == "service_completed_successfully":
            name = self.container(service)
            code = containers.podman("wait", name, timeout=READY_WITHIN).stdout.strip()
            assert code == "0", f"{service} exited with {code}:\n{self.logs(service)}"
        else:
            assert condition == "service_started", condition

    def wait_healthy(self, service: str, within: float = READY_WITHIN) -> None:
        """Run ``service``'s health check until it passes; fail if its container stops."""
        name = self.container(service)
        deadline = time.monotonic() + within
        while containers.podman("healthcheck", "run", name, check=False).returncode != 0:
            state = containers.podman("inspect", "--format", "{{.State.Status}}", name).stdout
            assert state.strip() == "running", f"{service} is {state}:\n{self.logs(service)}"
            assert time.monotonic() < deadline, f"{service} not healthy:\n{self.logs(service)}"
            time.sleep(1.0)

    def logs(self, service: str, tail: int = 40) -> str:
        with contextlib.suppress(AssertionError, RuntimeError):
            name = self.container(service)
            found = containers.podman("logs", "--tail", str(tail), name, check=False)
            return found.stdout + found.stderr
        return f"(no container of {service})"

    def all_logs(self, tail: int = 15) -> str:
        return "\n".join(f"--- {s}\n{self.logs(s, tail)}" for s in self.started)

    # ---------------------------------------------------------------------------------- down

    def down(self) -> list[str]:
        """``down --volumes``: the project's containers, network and volumes removed. Returns
        what it left of them (anything left is then removed by force: a failed ``up`` can
        leave a container ``down`` does not know)."""
        self.run("down", "--volumes", "--timeout", "20", check=False)
        label = f"label=io.podman.compose.project={self.project}"
        left: list[str] = []
        for kind, name in (("container", "{{.Names}}"), ("volume", "{{.Name}}")):
            listing = ["ps", "-a"] if kind == "container" else ["volume", "ls"]
            found = containers.podman(*listing, "--filter", label, "--format", name).stdout
            if found.split():
                left += found.split()
                containers.podman(kind, "rm", "--force", *found.split(), check=False)
        networks = containers.podman("network", "ls", "--filter", label, "--format", "{{.Name}}")
        if networks.stdout.split():
            left += networks.stdout.split()
            containers.podman("network", "rm", "--force", *networks.stdout.split(), check=False)
        return left
