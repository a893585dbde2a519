"""The front door's routing table and Caddyfile, without running caddy: every path of every
service's OpenAPI document is routed to that service alone, a path two services serve is
refused unless it is an operations endpoint, deploy/Caddyfile is what `minqing frontdoor`
writes for the default addresses, and the desk's page runs no inline script."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from minqing.services import frontdoor
from minqing.services.frontdoor import INTERNAL, AmbiguousPath, FrontDoor, Route, routing_table
from minqing.shared.service.settings import SERVICES, Settings
from tests.support.paths import ROOT

STATIC = ROOT / "services" / "projection" / "dashboard" / "static"


@pytest.fixture(scope="module")
def docs() -> dict[str, Any]:
    return dict(frontdoor.documents(Settings()))


def test_deploy_caddyfile_is_what_the_command_writes_for_the_default_addresses(
    docs: dict[str, Any],
) -> None:
    written = frontdoor.caddyfile(routing_table(docs), FrontDoor.default())
    assert (ROOT / "deploy" / "Caddyfile").read_text() == written, (
        "deploy/Caddyfile is stale: run `minqing frontdoor --output deploy/Caddyfile` "
        "(no MINQING_* variables set)"
    )


def test_every_path_is_routed_to_the_one_service_that_serves_it(docs: dict[str, Any]) -> None:
    table = routing_table(docs)
    fronts = [r.front for r in table]
    assert len(fronts) == len(set(fronts))  # no path at the front door twice
    for service in SERVICES:
        for path in docs[service]["paths"]:
            mine = [r for r in table if r.path == path and r.service == service]
            if path in INTERNAL:
                assert mine == [], path
                continue
            assert len(mine) == 1, (service, path)
            others = [s for s in SERVICES if s != service and path in docs[s]["paths"]]
            assert mine[0].prefixed == bool(others), (service, path, others)
    assert Route("projection", "/", prefixed=False) in table
    assert Route("projection", "/api/v1/issues/{issue_id}", prefixed=False) in table
    assert Route("followup", "/api/v1/issues/{issue_id}/case", prefixed=False) in table
    assert Route("intake", "/api/v1/dead-letters", prefixed=True).front in fronts
    assert "/intake/api/v1/dead-letters" in fronts and "/api/v1/dead-letters" not in fronts


def test_a_path_two_services_serve_must_be_an_operations_endpoint() -> None:
    def doc(*paths: tuple[str, str]) -> dict[str, Any]:
        return {"paths": {p: {"get": {"tags": [tag]}} for p, tag in paths}}

    ops = ("/api/v1/dead-letters", "operations")
    docs = {name: doc(ops) for name in SERVICES}
    docs["followup"] = doc(ops, ("/api/v1/issues/{issue_id}", "followup"))
    docs["projection"] = doc(ops, ("/api/v1/issues/{issue_id}", "projection"))
    with pytest.raises(AmbiguousPath, match=r"/api/v1/issues/\{issue_id\} is served by followup"):
        routing_table(docs)
    docs["followup"] = doc(ops)
    assert {r.front for r in routing_table(docs)} >= {"/api/v1/issues/{issue_id}"}


def test_path_parameters_match_one_segment_and_only_the_desk_matches_a_prefix() -> None:
    assert Route("projection", "/api/v1/issues/{issue_id}", False).pattern == "/api/v1/issues/*?"
    assert Route("intake", "/open311/v2/requests/{id}.{fmt}", False).pattern == (
        "/open311/v2/requests/*?.*?"
    )
    assert Route("projection", "/dashboard/*", False).pattern == "/dashboard/*"
    ingress = Route("intake", "/api/v1/ingress/{source}/{ingress_id}", True)
    assert (ingress.front, ingress.pattern) == (
        "/intake/api/v1/ingress/{source}/{ingress_id}",
        "/api/v1/ingress/*",
    )


def test_the_caddyfile_never_obtains_certificates_and_sets_hsts_only_over_tls(
    tmp_path: Path,
) -> None:
    table = [Route("projection", "/", False)]
    plain = frontdoor.caddyfile(table, FrontDoor.default())
    assert "auto_https off" in plain and "skip_install_trust" in plain and "admin off" in plain
    assert "http://:8080 {" in plain and "\tbind 127.0.0.1" in plain
    assert "Strict-Transport-Security" not in plain and "\ttls " not in plain
    cert, key = tmp_path / "a cert.pem", tmp_path / "key.pem"
    door = FrontDoor("0.0.0.0:443", FrontDoor.default().upstreams, cert, key)
    secure = frontdoor.caddyfile(table, door)
    assert "https://:443 {" in secure and f'\ttls "{cert}" "{key}"' in secure
    assert 'Strict-Transport-Security "max-age=31536000"' in secure
    assert door.url == "https://127.0.0.1:443/"
    with pytest.raises(ValueError, match="both"):
        frontdoor.caddyfile(table, FrontDoor("127.0.0.1:1", door.upstreams, cert, None))


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("inline <style>")
        self.found += [f"{tag} {name}=" for name in names if name.startswith("on")]
        if "style" in names:
            self.found.append(f"{tag} style=")
        if any((v or "").strip().lower().startswith("javascript:") for v in names.values()):
            self.found.append(f"{tag} javascript: URL")


def test_the_desk_page_has_no_inline_script_style_or_event_handler() -> None:
    # The front door's Content-Security-Policy (script-src 'self', style-src 'self') would
    # block them: the desk loads /dashboard/app.js and /dashboard/style.css instead.
    parser = _Inline()
    parser.feed((STATIC / "index.html").read_text())
    assert parser.found == []
    script = (STATIC / "app.js").read_text()
    for risky in ("eval(", "new Function", 'setAttribute("on', ".innerHTML", "style="):
        assert risky not in script, risky
    history = (ROOT / "services" / "projection" / "exports.py").read_text()
    assert "<style" not in history and "<script" not in history
    assert '<link rel="stylesheet" href="/dashboard/print.css">' in history
    assert (STATIC / "print.css").is_file()
