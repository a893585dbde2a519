"""A regular (not editable) `pip install` into a fresh virtual environment runs `minqing up`.

As a container image would: the package and its declared dependencies only (no dev extras),
run from an empty directory elsewhere, with nothing of the repository on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.identity import DESK
from tests.support.paths import ROOT
from tests.support.processes import poll
from tests.support.up import Up

# ~15 s to install from pip's cache on an idle 2-core machine, 30 s and more when it is busy.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".minqing"
)
INSTALL_WITHIN = 300.0
SHIPPED = [
    "minqing/shared/embedded/nats.conf",
    "minqing/shared/persistence/alembic_template/script.py.mako",
    "minqing/shared/persistence/alembic_template/env.py",
    "minqing/shared/contract/reference_data/categories.toml",
    "minqing/shared/contract/reference_data/calendar.toml",
    "minqing/shared/contract/reference_data/escalation.toml",
    "minqing/shared/contract/reference_data/routing.toml",
    "minqing/shared/contract/reference_data/plans.toml",
    "minqing/shared/contract/reference_data/lookback.toml",
    "minqing/services/projection/dashboard/static/index.html",
    "minqing/services/projection/dashboard/static/app.js",
    "minqing/services/projection/dashboard/static/style.css",
    "minqing/services/intake/migrations/env.py",
    "minqing/services/intake/migrations/versions/0001_initial.py",
]


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=INSTALL_WITHIN
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _installed(tmp_path: Path) -> Path:
    """A fresh venv with the working tree installed from a copy (no in-tree build leftovers)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    venv = tmp_path / "venv"
    # No pip of its own (ensurepip costs seconds): this environment's pip installs into it
    # (`--python`), as the venv's own would. --no-compile: the bytecode of the few modules
    # `up` imports is written as they load.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    target = ["--python", str(venv / "bin" / "python")]
    pip = [sys.executable, "-m", "pip", *target, "install", "-q", "--no-compile"]
    _run([*pip, str(source)], cwd=tmp_path)
    shutil.rmtree(source)
    return venv


def _user_env(venv: Path) -> dict[str, str]:
    """A shell with the venv activated and nothing of the repository or the test venv."""
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"])
    return env


def test_a_regular_install_runs_minqing_up_from_an_empty_directory(tmp_path: Path) -> None:
    started = time.monotonic()
    venv = _installed(tmp_path)
    installed = time.monotonic() - started
    python = str(venv / "bin" / "python")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = _user_env(venv)

    probe = (
        "import importlib.metadata as m, importlib.util as u, json, minqing.shared as s; "
        "print(json.dumps({'files': [str(f) for f in m.files('minqing')], "
        "'shared': s.__file__, 'top': {n: u.find_spec(n) is not None for n in "
        "('tests', 'pytest', 'shared', 'services')}}))"
    )
    found = json.loads(_run([python, "-c", probe], cwd=empty, env=env))
    assert Path(found["shared"]).is_relative_to(venv)
    assert not any(found["top"].values()), found["top"]  # one name installed: minqing
    code = [f for f in found["files"] if f.endswith(".py")]
    assert code and all(f.startswith("minqing/") for f in code)
    assert set(SHIPPED) <= set(found["files"])

    up = Up(tmp_path, command=[str(venv / "bin" / "minqing"), "up"], cwd=empty, env=env)
    up.env["MINQING_DATA_DIR"] = str(up.data_dir)
    try:
        up.start()
        up.wait_ready()
        assert "embedded nats-server at nats://127.0.0.1:" in up.output(), up.output()
        body = {
            "title": "A well pump has failed",
            "description": "Twelve households have no running water.",
            "category": "water",
            "village": "xuma",
            "source": "hotline_12345",
        }
        response = httpx.post(
            f"{up.url['intake']}/api/v1/reports", json=body, timeout=5, headers=DESK
        )
        assert response.status_code == 201, response.text
        issue_url = f"{up.url['projection']}/api/v1/issues/{response.json()['issue_id']}"
        poll(
            lambda: httpx.get(issue_url, timeout=5, headers=DESK).status_code,
            lambda code: code == 200,
        )
        desk = httpx.get(f"{up.url['projection']}/", timeout=5)
        script = httpx.get(f"{up.url['projection']}/dashboard/app.js", timeout=5)
        assert (desk.status_code, script.status_code) == (200, 200)  # the desk is installed
        assert "民情" in desk.text

        code, _ = up.stop(signal.SIGINT, whole_group=True)  # Ctrl-C: every PID it had is gone
        assert code == 130, up.output()
        assert "Traceback" not in up.output(), up.output()
    finally:
        up.kill_everything()
    assert list(empty.iterdir()) == []  # all data went to MINQING_DATA_DIR
    assert (up.data_dir / "postgres" / "PG_VERSION").is_file()
    assert {p.name for p in up.data_dir.iterdir()} >= {"nats", "postgres"}
    total = time.monotonic() - started
    print(f"fresh venv and install: {installed:.1f}s; whole test: {total:.1f}s")
