"""The embedded caddy: it serves its Caddyfile, keeps its files and log in its data dir, says
why when it cannot start (its port taken), and leaves nothing running when stopped."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from minqing.services.frontdoor import FrontDoor, write
from minqing.shared.embedded.caddy import EmbeddedCaddy
from minqing.shared.embedded.process import process_alive
from minqing.shared.service.infra import free_port, port_is_free


def _door() -> FrontDoor:
    return FrontDoor(f"127.0.0.1:{free_port()}", FrontDoor.default().upstreams)


def test_it_serves_its_caddyfile_and_stops_cleanly(tmp_path: Path) -> None:
    door = _door()
    config = tmp_path / "Caddyfile"
    write(config, door)
    with EmbeddedCaddy(tmp_path / "caddy", config, door.listen) as caddy:
        pid = caddy.pid
        assert pid is not None and process_alive(pid)
        missing = httpx.get(f"{door.url}nowhere", timeout=5)
        assert missing.status_code == 404 and "server" not in missing.headers
    assert not process_alive(pid)
    assert port_is_free(int(door.listen.rsplit(":", 1)[1]))
    assert (tmp_path / "caddy" / "caddy.log").is_file()
    assert (tmp_path / "caddy" / "data" / "caddy").is_dir()  # its own files: not in $HOME
    assert "shutdown complete" in (tmp_path / "caddy" / "caddy.log").read_text()


def test_a_taken_port_is_a_clear_error_with_the_log(tmp_path: Path) -> None:
    door = _door()
    config = tmp_path / "Caddyfile"
    write(config, door)
    host, port = door.listen.rsplit(":", 1)
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()
        caddy = EmbeddedCaddy(tmp_path / "caddy", config, door.listen)
        with pytest.raises(
            RuntimeError, match=r"caddy exited with code 1(.|\n)*address already in use"
        ):
            caddy.start()
    assert caddy.pid is None
