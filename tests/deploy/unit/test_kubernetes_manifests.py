"""The Kubernetes files of deploy/, checked offline: the Kustomize base and production overlay
rendered by the real Kustomize (kubectl's) and validated strictly against the Kubernetes
schemas (kubernetes-validate: an unknown field fails); the CloudNativePG Cluster against the
operator's own CRD schema and the NATS chart's values against the chart's values.yaml (both
vendored in tests/deploy/schemas/, with their source); and what the schemas cannot know,
against the code: probe paths the services serve, ports the settings give, settings that
exist, seeds `minqing nats-config` writes, the Caddyfiles `minqing frontdoor` writes, and
NetworkPolicies that let only the front door reach a service.

Not checked here (they need a cluster): admission (CEL rules of the CRDs, defaults), the
Helm chart's rendering (no helm here: the NATS server configuration the chart would write is
assembled from the chart's template by hand below, then checked by nats-server itself),
and the NetworkPolicies' enforcement by a network plugin."""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from minqing.services.cli import app as cli
from minqing.services.natsconfig import nats_users
from minqing.shared.embedded.caddy import caddy_binary
from minqing.shared.embedded.nats import nats_server_binary
from minqing.shared.messaging.access import write_access
from minqing.shared.service.settings import SERVICES, Settings
from tests.support.kubernetes import (
    BASE,
    K8S,
    PRODUCTION,
    Manifest,
    of_kind,
    pod_labels,
    render,
    selects,
)
from tests.support.paths import ROOT

KUBERNETES_VERSION = "1.37"  # kubernetes-validate's newest schemas
SCHEMAS = ROOT / "tests" / "deploy" / "schemas"
CLUSTER = ROOT / "deploy" / "postgres" / "cluster.yaml"
NATS_VALUES = ROOT / "deploy" / "nats" / "values.yaml"
CHART_VALUES = SCHEMAS / "nats-chart-2.14.2-values.yaml"
NAMESPACE = "minqing"
FRONTDOOR = "minqing-frontdoor"
# The NATS chart's pod labels for the release `nats` (its templates/_helpers.tpl,
# `nats.selectorLabels`: name, instance = the release, component).
NATS_POD = {
    "app.kubernetes.io/name": "nats",
    "app.kubernetes.io/instance": "nats",
    "app.kubernetes.io/component": "nats",
}
KUBE_DNS = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"})
# The one peer outside the namespace the production overlay lets read the services' ports.
PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
OVERLAYS = {"base": (BASE, []), "production": (PRODUCTION, [PROMETHEUS])}


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest], list[dict[str, Any]]]:
    """One kustomization rendered: its name, its objects, the outside peers it may allow."""
    directory, outside = OVERLAYS[request.param]
    return request.param, render(directory), outside


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return render(BASE)


@pytest.fixture(scope="module")
def cluster() -> Manifest:
    return next(d for d in yaml.safe_load_all(CLUSTER.read_text()) if d["kind"] == "Cluster")


def _port(service: str) -> int:
    default = Settings.model_fields[f"{service}_port"].default
    assert isinstance(default, int)
    return default


def _containers(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for m in manifests:
        if m["kind"] in ("Deployment", "Job"):
            for c in m["spec"]["template"]["spec"]["containers"]:
                yield m["metadata"]["name"], c


# --------------------------------------------------------------------------- well formed


def test_every_file_under_deploy_parses_as_yaml() -> None:
    files = [
        *K8S.rglob("*.yaml"),
        NATS_VALUES,
        CLUSTER,
    ]
    assert len(files) >= 14
    for path in files:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert documents, path
        for document in documents:
            assert isinstance(document, dict | list), path


def test_the_rendered_objects_pass_the_kubernetes_schemas_strictly(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]],
) -> None:
    name, manifests, _ = overlay
    kinds = sorted({m["kind"] for m in manifests})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Job",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    ], name
    for manifest in manifests:
        assert manifest["metadata"]["namespace"] == NAMESPACE, manifest["metadata"]["name"]
        # Raises kubernetes_validate.ValidationError naming the field and the object.
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_strict_validation_refuses_an_unknown_field(base: list[Manifest]) -> None:
    deployment = copy.deepcopy(of_kind(base, "Deployment")["minqing-intake"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["path"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# ------------------------------------------------------------- workloads against the code


@pytest.fixture(scope="module")
def routes() -> dict[str, set[str]]:
    """The GET paths each service's app serves, from its OpenAPI document (building an app
    connects to nothing; its routes are added when it starts)."""
    found = {}
    for name in SERVICES:
        application = importlib.import_module(f"minqing.services.{name}.app").create_app(Settings())
        paths = application.openapi()["paths"]
        found[name] = {path for path, operations in paths.items() if "get" in operations}
    return found


def probe_problems(manifests: list[Manifest], routes: dict[str, set[str]]) -> list[str]:
    """Probes that ask a service for a path it does not serve, or on a port it does not
    listen on (its setting's default), and services without both kinds of probe."""
    problems = []
    deployments = of_kind(manifests, "Deployment")
    for name in SERVICES:
        (container,) = deployments[f"minqing-{name}"]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        if ports != {"http": _port(name)}:
            problems.append(f"{name} listens on {_port(name)}, not {ports}")
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind)
            if probe is None or "httpGet" not in probe:
                problems.append(f"{name} has no HTTP {kind}")
                continue
            get = probe["httpGet"]
            if get["path"] not in routes[name]:
                problems.append(f"{name}'s {kind} asks for {get['path']}, which it does not serve")
            if ports.get(get["port"], get["port"]) != _port(name):
                problems.append(f"{name}'s {kind} asks port {get['port']}")
        if container["readinessProbe"]["httpGet"]["path"] != "/readyz":
            problems.append(f"{name} is ready before its database, NATS and consumers are")
    return problems


def test_every_probe_asks_for_a_path_the_service_serves_on_its_port(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]], routes: dict[str, set[str]]
) -> None:
    assert probe_problems(overlay[1], routes) == []


def test_a_probe_on_a_path_no_service_serves_is_found(
    base: list[Manifest], routes: dict[str, set[str]]
) -> None:
    broken = copy.deepcopy(base)
    deployment = of_kind(broken, "Deployment")["minqing-followup"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"] = (
        "/health"
    )
    assert probe_problems(broken, routes) == [
        "followup's livenessProbe asks for /health, which it does not serve"
    ]


def test_each_service_runs_its_own_command_twice_over_with_a_disruption_budget(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]],
) -> None:
    _, manifests, _ = overlay
    deployments = of_kind(manifests, "Deployment")
    budgets = of_kind(manifests, "PodDisruptionBudget")
    for name in (*SERVICES, "frontdoor"):
        deployment = deployments[f"minqing-{name}"]
        labels = pod_labels(deployment)
        assert selects(deployment["spec"]["selector"], labels)
        assert deployment["spec"]["replicas"] >= 2, name
        (budget,) = [b for b in budgets.values() if selects(b["spec"]["selector"], labels)]
        assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"], name
        assert budget["spec"]["selector"] == deployment["spec"]["selector"], name
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        if name in SERVICES:
            assert container["command"] == ["minqing", "serve", name]
        terminating = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert terminating >= 30, name
    (job,) = of_kind(manifests, "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["minqing", "migrate"]
    runner = CliRunner()
    for args in (["serve", "--help"], ["migrate", "--help"]):
        assert runner.invoke(cli, args).exit_code == 0, args


def test_every_container_runs_the_one_image_at_the_overlays_tag(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]],
) -> None:
    name, manifests, _ = overlay
    directory = OVERLAYS[name][0]
    (image,) = yaml.safe_load((directory / "kustomization.yaml").read_text())["images"]
    expected = f"{image.get('newName', image['name'])}:{image['newTag']}"
    images = {c["image"] for _, c in _containers(manifests)}
    assert images == {expected}


def test_every_pod_runs_as_a_user_without_privileges_on_a_read_only_root(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]],
) -> None:
    for manifest in overlay[1]:
        if manifest["kind"] not in ("Deployment", "Job"):
            continue
        pod = manifest["spec"]["template"]["spec"]
        name = manifest["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "memory" in container["resources"]["limits"], name
            assert "cpu" in container["resources"]["requests"], name
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, name  # the one writable place


def test_the_settings_given_are_settings_minqing_has_and_accepts(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, manifests, _ = overlay
    config = of_kind(manifests, "ConfigMap")["minqing-config"]["data"]
    given = dict(config)
    for _, container in _containers(manifests):
        given |= {e["name"]: e.get("value", "") for e in container.get("env", [])}
    known = {f"MINQING_{field.upper()}" for field in Settings.model_fields}
    ours = {k for k in given if k.startswith("MINQING_")}
    assert ours - known == set()
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.host == "0.0.0.0"
    for name in SERVICES:
        assert settings.port(name) == _port(name)


def test_each_service_is_given_its_own_nats_seed_and_the_databases_secrets(
    base: list[Manifest], cluster: Manifest
) -> None:
    seeds = {u.name: u.seed_path.name for u in nats_users(Settings()) if u.role == "service"}
    assert set(seeds) == set(SERVICES)
    deployments = of_kind(base, "Deployment")
    name = cluster["metadata"]["name"]
    for service in SERVICES:
        pod = deployments[f"minqing-{service}"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        (item,) = volumes["nats-credentials"]["secret"]["items"]
        assert item["key"] == seeds[service]  # its own seed, and only its own
        seed = f"{mounts['nats-credentials']}/{item['path']}"
        assert env["MINQING_NATS_CREDENTIALS"]["value"] == seed
        for variable, key in (("PGUSER", "username"), ("PGPASSWORD", "password")):
            reference = env[variable]["valueFrom"]["secretKeyRef"]
            assert reference == {"name": f"{name}-app", "key": key}
        assert volumes["postgres-ca"]["secret"]["secretName"] == f"{name}-ca"


def test_the_services_reach_the_database_and_nats_the_other_files_install(
    base: list[Manifest], cluster: Manifest
) -> None:
    config = of_kind(base, "ConfigMap")["minqing-config"]["data"]
    database = urlsplit(config["MINQING_DATABASE_URL"])
    assert database.scheme == "postgresql+asyncpg"
    assert database.hostname == f"{cluster['metadata']['name']}-rw"
    assert database.port == 5432
    assert database.path == f"/{cluster['spec']['bootstrap']['initdb']['database']}"
    assert database.password is None  # PGPASSWORD, from the operator's Secret
    values = yaml.safe_load(NATS_VALUES.read_text())
    nats = urlsplit(config["MINQING_NATS_URL"])
    assert (nats.hostname, nats.port) == ("nats", values["config"]["nats"]["port"])
    assert int(config["MINQING_STREAM_REPLICAS"]) == values["config"]["cluster"]["replicas"] == 3
    assert cluster["metadata"]["namespace"] == NAMESPACE


# ----------------------------------------------------------------------- the front door


def test_the_caddyfiles_are_what_minqing_frontdoor_writes_and_caddy_reads(
    tmp_path: Path,
) -> None:
    binaries = str(nats_server_binary().parent)
    done = subprocess.run(
        ["bash", str(K8S / "frontdoor.sh"), str(tmp_path)],
        env={"PATH": f"{binaries}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for relative in ("base/Caddyfile", "overlays/production/Caddyfile"):
        assert (K8S / relative).read_text() == (tmp_path / relative).read_text(), (
            f"deploy/k8s/{relative} is stale: run deploy/k8s/frontdoor.sh"
        )
        adapted = subprocess.run(
            [str(caddy_binary()), "adapt", "--config", str(K8S / relative)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert adapted.returncode == 0, (relative, adapted.stderr)


def test_the_front_door_proxies_to_each_services_service_and_port(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]],
) -> None:
    _, manifests, _ = overlay
    services = of_kind(manifests, "Service")
    deployments = of_kind(manifests, "Deployment")
    maps = [m for m in of_kind(manifests, "ConfigMap").values() if "Caddyfile" in m["data"]]
    (caddyfile,) = [m["data"]["Caddyfile"] for m in maps]
    volumes = deployments[FRONTDOOR]["spec"]["template"]["spec"]["volumes"]
    (mounted,) = [v["configMap"]["name"] for v in volumes if "configMap" in v]
    assert mounted == maps[0]["metadata"]["name"]  # the generated name, hash and all
    upstreams = {
        line.split()[1]
        for line in caddyfile.splitlines()
        if line.strip().startswith("reverse_proxy")
    }
    expected = set()
    for name in SERVICES:
        service = services[f"minqing-{name}"]
        assert selects(service["spec"]["selector"], pod_labels(deployments[f"minqing-{name}"]))
        (port,) = service["spec"]["ports"]
        assert port["targetPort"] == "http"
        expected.add(f"minqing-{name}:{port['port']}")
    assert upstreams == expected
    (front,) = services[FRONTDOOR]["spec"]["ports"]
    (container,) = deployments[FRONTDOOR]["spec"]["template"]["spec"]["containers"]
    (listening,) = container["ports"]
    assert front["targetPort"] == listening["name"]
    assert f"://:{listening['containerPort']} {{" in caddyfile


# ---------------------------------------------------------------------- NetworkPolicies


def _pods(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    return {
        m["metadata"]["name"]: pod_labels(m)
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
    }


def _policies(manifests: list[Manifest], labels: dict[str, str], kind: str) -> list[Manifest]:
    """The NetworkPolicies that restrict ``kind`` (Ingress, Egress) for pods so labelled."""
    return [
        p
        for p in of_kind(manifests, "NetworkPolicy").values()
        if kind in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], labels)
    ]


def ingress_problems(manifests: list[Manifest], outside: list[dict[str, Any]]) -> list[str]:
    """Ways into a service other than from the front door (or the named outside peers), and
    a service the front door cannot reach."""
    problems = []
    pods = _pods(manifests)
    for name in SERVICES:
        port = _port(name)
        guarding = _policies(manifests, pods[f"minqing-{name}"], "Ingress")
        if not guarding:
            problems.append(f"{name}: no NetworkPolicy limits who reaches it")
        front_door_reaches = False
        for policy in guarding:
            policy_name = policy["metadata"]["name"]
            for rule in policy["spec"].get("ingress") or []:
                ports = {p.get("port") for p in rule.get("ports") or []}
                if not ports:
                    problems.append(f"{policy_name}: opens every port of {name}")
                peers = rule.get("from")
                if not peers:
                    problems.append(f"{policy_name}: lets anyone reach {name}")
                for peer in peers or []:
                    if peer in outside:
                        continue
                    if "ipBlock" in peer or "namespaceSelector" in peer:
                        problems.append(f"{policy_name}: lets {peer} reach {name}")
                        continue
                    chosen = sorted(
                        n for n, labels in pods.items() if selects(peer["podSelector"], labels)
                    )
                    if chosen != [FRONTDOOR]:
                        problems.append(f"{policy_name}: lets {chosen} reach {name}")
                    elif port in ports or "http" in ports:
                        front_door_reaches = True
        if not front_door_reaches:
            problems.append(f"the front door cannot reach {name} on {port}")
    return problems


def _reaches(
    rules: list[dict[str, Any]],
    labels: dict[str, str],
    port: int,
    namespace: dict[str, str] | None = None,
) -> bool:
    """Whether some egress rule lets a pod reach pods so labelled (in its own namespace, or
    in one labelled ``namespace``) on a TCP port."""
    for rule in rules:
        if rule.get("ports") and not any(
            p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in rule["ports"]
        ):
            continue
        if "to" not in rule:
            return True
        for peer in rule["to"]:
            if "ipBlock" in peer:
                continue
            if "namespaceSelector" in peer:
                if namespace is None or not selects(peer["namespaceSelector"], namespace):
                    continue
            elif namespace is not None:
                continue
            if selects(peer.get("podSelector", {}), labels):
                return True
    return False


def test_only_the_front_door_reaches_the_services(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]],
) -> None:
    _, manifests, outside = overlay
    assert ingress_problems(manifests, outside) == []


@pytest.mark.parametrize(
    "rule",
    [
        {"ports": [{"port": 8082, "protocol": "TCP"}]},  # from anyone
        {"from": [{"podSelector": {}}], "ports": [{"port": 8082}]},  # any pod of the namespace
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8082}]},
    ],
)
def test_a_network_policy_that_leaves_a_service_open_is_found(
    base: list[Manifest], rule: dict[str, Any]
) -> None:
    broken = copy.deepcopy(base)
    of_kind(broken, "NetworkPolicy")["minqing-assignment-ingress"]["spec"]["ingress"].append(rule)
    problems = ingress_problems(broken, [])
    assert len(problems) == 1 and "reach assignment" in problems[0], problems


def test_a_service_no_policy_guards_is_found(base: list[Manifest]) -> None:
    broken = [m for m in base if m["metadata"]["name"] != "minqing-projection-ingress"]
    assert ingress_problems(broken, []) == [
        "projection: no NetworkPolicy limits who reaches it",
        "the front door cannot reach projection on 8084",
    ]


def test_the_services_reach_nats_postgresql_and_dns_and_the_front_door_the_services(
    overlay: tuple[str, list[Manifest], list[dict[str, Any]]], cluster: Manifest
) -> None:
    _, manifests, _ = overlay
    pods = _pods(manifests)
    database = {"cnpg.io/cluster": cluster["metadata"]["name"], "cnpg.io/podRole": "instance"}
    for name in (*SERVICES, "migrate"):
        policies = _policies(manifests, pods[f"minqing-{name}"], "Egress")
        assert policies, f"{name}'s egress is not limited"
        rules = [r for p in policies for r in p["spec"].get("egress") or []]
        assert _reaches(rules, database, 5432), name
        assert _reaches(rules, KUBE_DNS[1], 53, KUBE_DNS[0]), name
        assert _reaches(rules, NATS_POD, 4222) == (name != "migrate"), name
        assert not _reaches(rules, pods[FRONTDOOR], 8080), name
    rules = [
        r for p in _policies(manifests, pods[FRONTDOOR], "Egress") for r in p["spec"]["egress"]
    ]
    for name in SERVICES:
        assert _reaches(rules, pods[f"minqing-{name}"], _port(name)), name
    assert not _reaches(rules, NATS_POD, 4222)
    assert not _reaches(rules, database, 5432)


# -------------------------------------------------------------- CloudNativePG's Cluster


def _strict(schema: Any) -> Any:
    """An OpenAPI schema of a CRD in which an object refuses fields it does not name (as the
    API server does with `kubectl apply --validate=strict`), except where the CRD keeps
    unknown fields on purpose."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {k: _strict(v) for k, v in schema.items()}
    if (
        strict.get("type") == "object"
        and "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def crd_problems(document: Manifest) -> list[str]:
    """What CloudNativePG 1.30.0's CRD schema refuses in one of its objects."""
    kind = document["kind"].lower() + "s"
    vendored = json.loads((SCHEMAS / f"cloudnative-pg-1.30.0-{kind}.json").read_text())
    assert document["apiVersion"] == f"{vendored['group']}/{vendored['version']}"
    assert document["kind"] == vendored["kind"]
    validator = jsonschema.Draft7Validator(_strict(vendored["openAPIV3Schema"]))
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_the_postgresql_cluster_and_its_backups_pass_cloudnative_pgs_schema(
    cluster: Manifest,
) -> None:
    documents = list(yaml.safe_load_all(CLUSTER.read_text()))
    assert [d["kind"] for d in documents] == ["Cluster", "ScheduledBackup"]
    for document in documents:
        assert crd_problems(document) == []
        assert set(document["metadata"]) <= {"name", "namespace", "labels", "annotations"}
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["bootstrap"]["initdb"]["database"] == "minqing"
    assert spec["bootstrap"]["initdb"]["owner"] == "minqing"
    assert spec["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    assert spec["postgresql"]["synchronous"]["number"] >= 1
    assert documents[1]["spec"]["cluster"]["name"] == cluster["metadata"]["name"]


def test_the_cluster_schema_refuses_a_misspelt_or_wrong_value(cluster: Manifest) -> None:
    broken = copy.deepcopy(cluster)
    broken["spec"]["backup"]["barmanObjectStore"]["wal"]["compresion"] = "gzip"
    broken["spec"]["postgresql"]["synchronous"]["method"] = "all"
    problems = crd_problems(broken)
    assert len(problems) == 2, problems
    assert any("'compresion' was unexpected" in p for p in problems)


# ---------------------------------------------------------------- the NATS chart's values


def unknown_keys(values: Any, chart: Any, path: str = "") -> list[str]:
    """Keys of ``values`` that the chart's values.yaml does not have, or whose kind of value
    (map, list, scalar) differs. Below a ``merge`` (NATS configuration or a Kubernetes
    object), an ``env`` or a map the chart leaves empty for the user, anything goes."""
    if not isinstance(values, dict):
        return []
    problems = []
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        if key not in chart:
            problems.append(f"{here}: not a value of the chart")
            continue
        known = chart[key]
        if isinstance(known, dict) and (not known or key in ("merge", "env")):
            if not isinstance(value, dict):
                problems.append(f"{here}: should be a map")
            continue
        if known is not None and isinstance(known, dict) != isinstance(value, dict):
            problems.append(f"{here}: a {type(value).__name__}, the chart has a map")
            continue
        problems += unknown_keys(value, known, here)
    return problems


def test_the_nats_values_are_the_charts_own_keys() -> None:
    values = yaml.safe_load(NATS_VALUES.read_text())
    chart = yaml.safe_load(CHART_VALUES.read_text())
    assert unknown_keys(values, chart) == []
    assert unknown_keys({"config": {"jetstream": {"filestore": {}}}}, chart) == [
        "config.jetstream.filestore: not a value of the chart"
    ]
    assert values["config"]["cluster"]["enabled"] is True
    assert values["config"]["cluster"]["replicas"] == 3
    jetstream = values["config"]["jetstream"]
    assert jetstream["enabled"] and jetstream["fileStore"]["enabled"]
    assert jetstream["fileStore"]["pvc"]["enabled"]
    assert jetstream["memoryStore"]["enabled"] is False
    assert jetstream["merge"]["sync_interval"] == "always"


def _nats_conf(values: dict[str, Any]) -> str:
    """The nats.conf the chart (2.14.2) writes into its ConfigMap for these values and the
    release `nats`: its files/config/config.yaml, cluster.yaml and jetstream.yaml for the
    parts enabled here, then each `merge`, formatted as its `nats.formatConfig` does (JSON,
    `<< x >>` unquoted, a `...$include` key turned into an include directive)."""
    config = values["config"]
    jetstream: dict[str, Any] = {
        "max_memory_store": 0,
        "store_dir": config["jetstream"]["fileStore"]["dir"],
        "max_file_store": f"<< {config['jetstream']['fileStore']['pvc']['size']} >>",
        **config["jetstream"]["merge"],
    }
    replicas = config["cluster"]["replicas"]
    document: dict[str, Any] = {
        "server_name": "<< $SERVER_NAME >>",
        "lame_duck_grace_period": "10s",
        "lame_duck_duration": "30s",
        "pid_file": "/var/run/nats/nats.pid",
        "port": config["nats"]["port"],
        "cluster": {
            "name": "nats",
            "port": 6222,
            "no_advertise": True,
            "routes": [f"nats://nats-{i}.nats-headless:6222" for i in range(replicas)],
        },
        "http_port": config["monitor"]["port"],
        "jetstream": jetstream,
        **config["merge"],
    }
    lines = []
    for line in json.dumps(document, indent=2, sort_keys=True).splitlines():
        key, _, rest = line.strip().partition(": ")
        if key.endswith('$include"'):
            lines.append(f"include {json.loads(rest.rstrip(','))};")
            continue
        lines.append(line.replace('"<< ', "").replace(' >>"', ""))
    return "\n".join(lines) + "\n"


def test_nats_server_accepts_the_configuration_the_chart_writes_with_minqings_users(
    tmp_path: Path,
) -> None:
    values = yaml.safe_load(NATS_VALUES.read_text())
    write_access(tmp_path, nats_users(Settings()))  # what `minqing nats-config` writes
    conf = tmp_path / "nats.conf"
    conf.write_text(_nats_conf(values))
    text = conf.read_text()
    assert '"sync_interval": "always"' in text and "include access.conf;" in text
    done = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(conf)],
        env={"SERVER_NAME": "nats-0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    # nats-server refuses an option it does not know: the check above can fail.
    values["config"]["jetstream"]["merge"]["sync_intervall"] = "always"
    conf.write_text(_nats_conf(values))
    refused = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(conf)],
        env={"SERVER_NAME": "nats-0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0 and "sync_intervall" in refused.stderr + refused.stdout
