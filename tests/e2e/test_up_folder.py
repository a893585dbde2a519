"""The folder where `minqing up` runs is its one owner's: a second `up` on it is refused in
one line and disturbs nothing, and `minqing open311-key` works there against the embedded
database while `up` runs (attached) and after it stopped (started for the command). One
`up` for both: each start of a fresh one costs the machine an initdb and five processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from minqing.shared.embedded.process import process_alive
from tests.support.up import Up

pytestmark = pytest.mark.e2e

REQUEST = {
    "service_code": "101",
    "attribute[village]": "qizhuang",
    "description": "The light at the bus stop is out",
    "address_string": "Bus stop, Qizhuang",
}


def open311_key(up: Up, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user types it in that folder (no MINQING_DATABASE_URL)."""
    return subprocess.run(
        [sys.executable, "-m", "minqing", "open311-key", *args],
        cwd=up.cwd,
        env=up.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def a_second_up_is_refused(first: Up, tmp_path: Path) -> None:
    """A second `up` on the running one's data dir says why in one line and starts nothing."""
    (tmp_path / "second").mkdir()
    data_dir = first.cwd / ".minqing"
    command = [sys.executable, "-m", "minqing", "up", "--data-dir", str(data_dir)]
    second = Up(tmp_path / "second", command=command)
    try:
        second.start()
        assert second.process is not None
        code = second.process.wait(timeout=60)
        printed = second.output()
        assert code == 1, printed
        assert printed.splitlines() == [
            f"minqing up: {data_dir} is in use by another process (is `minqing up` "
            "already running on it?); stop that one, or pass another --data-dir"
        ]
        # It started nothing: no second nats-server wrote into the first one's store.
        nats_log = (data_dir / "nats" / "nats-server.log").read_text()
        assert nats_log.count("Starting nats-server") == 1, nats_log
        # The first one did not notice.
        for name, url in first.url.items():
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200, name
    finally:
        second.kill_everything()


def test_the_folder_has_one_up_and_its_keys_are_managed_there(tmp_path: Path) -> None:
    up = Up(tmp_path, command=[sys.executable, "-m", "minqing", "up"])
    pgdata = tmp_path / ".minqing" / "postgres"
    try:
        before = open311_key(up, "list")
        assert before.returncode == 1 and "run `minqing up` in this folder" in before.stderr

        up.start()
        up.wait_ready()
        a_second_up_is_refused(up, tmp_path)
        created = open311_key(up, "create", "bus-app")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        url = f"{up.url['intake']}/open311/v2/requests.json"
        response = httpx.post(url, data={**REQUEST, "api_key": key}, timeout=10)
        assert response.status_code == 200, response.text
        request_id = response.json()[0]["service_request_id"]
        shown = httpx.get(f"{up.url['intake']}/open311/v2/requests/{request_id}.json").json()
        assert shown[0]["service_code"] == "101"
        revoked = open311_key(up, "revoke", "bus-app")
        assert revoked.returncode == 0, revoked.stderr
        refused = httpx.post(url, data={**REQUEST, "api_key": key}, timeout=10)
        assert refused.status_code == 403
        assert refused.json()[0]["description"] == "invalid api_key: unknown or revoked"
        up.stop(signal.SIGINT, whole_group=True)

        # `up` is stopped: the command starts the embedded database itself, and stops it.
        listed = open311_key(up, "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith("bus-app\tonline\tcreated ")
        assert "\trevoked " in listed.stdout and key not in listed.stdout
        pid_file = pgdata / "postmaster.pid"
        assert not pid_file.exists() or not process_alive(int(pid_file.read_text().split()[0]))
    finally:
        up.kill_everything()
