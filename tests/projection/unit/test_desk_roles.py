"""The desk's own table of who may call what (``MAY`` in app.js) against the matrix that
the services enforce (shared/identity/matrix.toml): the desk hides what a role may not use,
so the two must say the same, for every endpoint the desk calls and nothing else."""

from __future__ import annotations

import json
import re

import pytest

from minqing.shared.identity.policy import matrix, router
from tests.support.paths import ROOT

STATIC = ROOT / "services" / "projection" / "dashboard" / "static"
SCRIPT = (STATIC / "app.js").read_text()
PAGE = (STATIC / "index.html").read_text()


def desk_table() -> dict[str, list[str]]:
    found = re.search(r"^const MAY = (\{.*?^\});$", SCRIPT, re.DOTALL | re.MULTILINE)
    assert found, "app.js has no `const MAY = {...};` table"
    table: dict[str, list[str]] = json.loads(found.group(1))  # written as plain JSON
    return table


def called_paths() -> set[str]:
    """Every API path app.js names, its parameters filled in and its query left off."""
    literals = re.findall(r"[\"'`](/api/v1/[^\"'`?]*)", SCRIPT)
    return {re.sub(r"\$\{[^}]*\}", "x", literal) for literal in literals}


def test_the_desk_table_says_what_the_matrix_says() -> None:
    entries = matrix()
    for endpoint, roles in desk_table().items():
        assert endpoint in entries, f"{endpoint} is not in matrix.toml"
        entry = entries[endpoint]
        assert not entry.public, f"{endpoint} is public: the desk need not list it"
        assert sorted(roles) == sorted(role.value for role in entry.roles), endpoint
        assert len(roles) == len(set(roles)), endpoint


def test_every_endpoint_the_desk_calls_is_in_its_table_or_public() -> None:
    table = desk_table()
    paths = called_paths()
    assert "/api/v1/issues/x/history" in paths and "/api/v1/session" in paths  # the regex works
    reached = set()
    for path in paths:
        entry = router().find("GET", path)
        assert entry is not None, f"app.js calls {path}, which the matrix does not name"
        assert entry.public or entry.endpoint in table, f"{entry.endpoint} missing from MAY"
        reached.add(entry.endpoint)
    # The only changes it sends are logging in and out, open to anyone.
    methods = set(re.findall(r'method: "([A-Z]+)"', SCRIPT)) - {"GET"}
    assert methods == {"POST", "DELETE"}
    for method in methods:
        entry = router().find(method, "/api/v1/session")
        assert entry is not None and entry.public, method
    # Nothing stale: every entry of the table is an endpoint the desk calls.
    assert set(table) <= reached


@pytest.mark.parametrize(
    ("where", "needs"),
    [
        ("index.html data-needs", re.findall(r'data-needs="([^"]+)"', PAGE)),
        ("app.js may()", re.findall(r'may\("([^"]+)"\)', SCRIPT)),
    ],
)
def test_what_the_page_asks_for_is_in_the_table(where: str, needs: list[str]) -> None:
    assert needs, f"no {where} found"
    table = desk_table()
    assert [need for need in needs if need not in table] == [], where


def test_statistics_are_for_supervisors_and_inspectors_only() -> None:
    # What the docs promise (docs/supervisor/index.md, "What each role sees").
    assert re.search(r'data-tab="stats"[^>]*data-needs="GET /api/v1/stats"', PAGE)
    assert sorted(desk_table()["GET /api/v1/stats"]) == ["inspector", "supervisor"]
