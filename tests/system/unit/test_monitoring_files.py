"""The alert rules and the dashboard in deploy/ are well formed, and every metric they
name is one the services export (the names read from the services' own registries, so a
metric renamed in the code fails here, not silently on a dashboard)."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from minqing.shared.ingress.metrics import IngressMetrics
from minqing.shared.service.metrics import ServiceMetrics
from tests.support.paths import ROOT

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "minqing.json"
NAMED = re.compile(r"\bminqing_[a-z_]+\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def exported() -> set[str]:
    """Every sample name the services' registries can expose."""
    registries: list[CollectorRegistry] = [
        ServiceMetrics().registry,
        IngressMetrics("intake-ingress").registry,
    ]
    names = set()
    for registry in registries:
        for family in registry.collect():
            names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
    return names


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_rule_is_whole_and_names_exported_metrics() -> None:
    rules = _rules()
    assert len(rules) >= 5
    known = exported()
    names = [rule["alert"] for rule in rules]
    assert len(set(names)) == len(names)
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        used = set(NAMED.findall(rule["expr"]))
        assert used and used <= known, (rule["alert"], used - known)
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_the_alerts_cover_what_an_operator_must_hear_of() -> None:
    used = {name for rule in _rules() for name in NAMED.findall(rule["expr"])}
    assert {
        "minqing_outbox_oldest_unsent_seconds",  # the outbox's age
        "minqing_consumer_pending",  # consumer lag
        "minqing_dead_letters_stored",  # dead letters
        "minqing_messages_published_total",  # overdue matters rising
    } <= used


def test_every_dashboard_panel_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    known = exported()
    panels = dashboard["panels"]
    assert len(panels) >= 8
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        [target] = panel["targets"]
        used = set(NAMED.findall(target["expr"]))
        assert used and used <= known, (panel["title"], used - known)
        assert panel["datasource"]["uid"] == "${datasource}"
