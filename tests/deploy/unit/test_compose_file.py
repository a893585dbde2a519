"""deploy/compose.yaml read as data: what the integration test runs (tests/deploy/integration/
test_compose.py) is also wired consistently where a run would not notice at once."""

from __future__ import annotations

import re
from typing import Any

import yaml

from minqing.shared.service.settings import SERVICES, Settings
from tests.support.paths import ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"
NATS_NODES = ("nats-1", "nats-2", "nats-3")


def _services() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def _default_port(service: str) -> int:
    return int(Settings.model_fields[f"{service}_port"].default)


def test_third_party_images_default_to_the_official_ones() -> None:
    services = _services()
    for service, variable, official in (
        ("nats-1", "MINQING_NATS_IMAGE", "docker.io/library/nats:"),
        ("postgres", "MINQING_POSTGRES_IMAGE", "docker.io/library/postgres:"),
        ("frontdoor", "MINQING_CADDY_IMAGE", "docker.io/library/caddy:"),
    ):
        assert services[service]["image"].startswith(f"${{{variable}:-{official}"), service


def test_every_service_runs_twice_with_its_own_nats_key() -> None:
    services = _services()
    for name in SERVICES:
        replicas = {
            s: spec for s, spec in services.items() if spec.get("command", [])[-1:] == [name]
        }
        assert sorted(replicas) == [f"{name}-1", f"{name}-2"]
        for spec in replicas.values():
            assert spec["command"] == ["minqing", "serve", name]
            environment = spec["environment"]
            assert environment["MINQING_STREAM_REPLICAS"] == "3"
            assert environment["MINQING_NATS_URL"].split(",") == [
                f"nats://{node}:4222" for node in NATS_NODES
            ]
            key = f"/nats/credentials/{name}.nk:{environment['MINQING_NATS_CREDENTIALS']}:ro"
            assert any(volume.endswith(key) for volume in spec["volumes"]), spec["volumes"]
            assert set(spec["depends_on"]) == {"migrate", *NATS_NODES}


def test_the_front_door_spreads_each_service_over_its_replicas_and_alone_is_published() -> None:
    services = _services()
    script = services["config"]["command"][-1]
    upstreams = dict(re.findall(r"--upstream '(\w+)=([^']+)'", script))
    assert upstreams == {
        name: f"{name}-1:{_default_port(name)} {name}-2:{_default_port(name)}" for name in SERVICES
    }
    assert "--listen :8080" in script
    published = {s for s, spec in services.items() if spec.get("ports")}
    assert published == {"frontdoor"}
    assert services["frontdoor"]["ports"] == ["${MINQING_FRONT_DOOR_ADDRESS:-127.0.0.1:8080}:8080"]


def test_the_nats_nodes_form_one_cluster_on_the_production_settings() -> None:
    services = _services()
    cluster = (ROOT / "deploy" / "nats-cluster.conf").read_text()
    assert 'include "nats.conf"' in cluster
    routes = re.findall(r"nats-route://([\w-]+):6222", cluster)
    assert tuple(routes) == NATS_NODES
    for node in NATS_NODES:
        command = services[node]["command"]
        assert command[command.index("--name") + 1] == node
        mounts = {v.split(":")[-2] for v in services[node]["volumes"]}
        assert {"/etc/nats/nats.conf", "/etc/nats/access.conf"} <= mounts
        assert f"{node}:/data" in services[node]["volumes"]
