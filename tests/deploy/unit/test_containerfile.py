"""The Containerfile (and the test images' ones) lint clean with hadolint, and agree with the
settings and the build context; no image is built here (tests/deploy/integration does)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minqing.shared.service.settings import SERVICES, Settings
from tests.support.paths import ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"
CONTAINERFILE = ROOT / "Containerfile"
CONTAINERFILES = [CONTAINERFILE, *sorted((ROOT / "tests/support/images").glob("*.Containerfile"))]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


@pytest.mark.parametrize("path", CONTAINERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path: Path) -> None:
    linted = subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, check=False
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_base_is_a_build_argument_defaulting_to_the_official_python_image() -> None:
    instructions = _instructions(CONTAINERFILE)
    assert instructions[0] == ("ARG", "BASE_IMAGE=docker.io/library/python:3.12-slim")
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert stages == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]


def test_the_image_runs_as_its_own_user_not_root() -> None:
    users = [rest for word, rest in _instructions(CONTAINERFILE) if word == "USER"]
    assert users == ["10001:10001"]


def test_the_health_check_probes_the_ports_the_services_listen_on() -> None:
    (check,) = [rest for word, rest in _instructions(CONTAINERFILE) if word == "HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :])
    code = command[command.index("-c") + 1]
    (ports_line,) = [line for line in code.splitlines() if line.startswith("ports = ")]
    probed = ast.literal_eval(ports_line.removeprefix("ports = "))
    defaults = Settings.model_fields
    assert probed == {name.upper(): defaults[f"{name}_port"].default for name in SERVICES}
    assert "/readyz" in code
    (exposed,) = [rest for word, rest in _instructions(CONTAINERFILE) if word == "EXPOSE"]
    assert sorted(int(p) for p in exposed.split()) == sorted(probed.values())


def test_the_build_context_holds_only_what_the_containerfile_copies() -> None:
    copied = set()
    for word, rest in _instructions(CONTAINERFILE):
        if word == "COPY" and not rest.startswith("--from"):
            copied.update(rest.split()[:-1])  # the last argument is the destination
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "everything is left out unless let in"
    let_in = {p.removeprefix("!") for p in patterns if p.startswith("!")}
    assert let_in == copied
    assert not let_in & {".venv", ".git", "tests", "bench", "site", "docs", ".minqing"}
