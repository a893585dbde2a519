"""The Kubernetes base, run for real where it can be: `podman kube play` plays the rendered
migration Job's pod, intake's Deployment (two replicas) and the front door's Deployment from
the image the Containerfile builds, on a network of their own where `nats` is a NATS server
that lets in only Minqing's users and `minqing-db-rw` a PostgreSQL with a password (the
names the ConfigMap gives). Both intake replicas become ready on the readiness probe's
path, the first operator is added with `minqing user add` in a pod as the guide says, and
the front door, running the Caddyfile `minqing frontdoor` wrote, routes to intake.

What this proves of the manifests: the image runs `minqing migrate`, `minqing serve intake`
and `caddy run` as the rendered commands say; as the non-root user, on a read-only root file
system with /tmp its only writable place; with the settings of the ConfigMap, the database
user and password from the Secret's keys (PGUSER, PGPASSWORD) and the service's own NATS seed
from the Secret mounted where MINQING_NATS_CREDENTIALS points (NATS refuses anyone else, and
/readyz is 200 only with NATS, the database and every consumer attached).

What it changes in the rendered objects, because podman is not a cluster (each change is in
``_for_podman``): PostgreSQL without TLS (PGSSLMODE=disable: the test server has no
certificate); one stream copy (one NATS server); names given a suffix of this run; the Job's
pod template played as a Pod (podman plays no Jobs); secret volumes marked ``optional:
false`` (podman 4.3 panics on a secret volume without it); no ``ports`` (podman 4.3
publishes each on the host, where 8081 may be taken: each pod is reached at its own address
on the network); no Services, so the front door is told intake's pod address under the
Service's name (``hostAliases``; the other services are not played, their routes would
answer 502). Podman 4.3 reads a secret for environment variables as a JSON map of base64
values, and writes a secret volume's files from a Secret's ``data`` without decoding it:
``_secret`` stores each accordingly.

Not run here: NetworkPolicies, PodDisruptionBudgets, Services, probes by a kubelet, TLS to
PostgreSQL, three NATS nodes."""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from minqing.services.natsconfig import nats_users
from minqing.shared.messaging.access import write_access
from minqing.shared.service.settings import Settings
from tests.support import containers
from tests.support.kubernetes import BASE, Manifest, of_kind, render
from tests.support.processes import poll

CONTAINER_TESTS = "MINQING_CONTAINER_TESTS"
pytestmark = [
    pytest.mark.containers,
    # Builds images (minutes on a first run): only where asked for, as the compose test.
    pytest.mark.skipif(
        os.environ.get(CONTAINER_TESTS) != "1",
        reason=f"a container test: set {CONTAINER_TESTS}=1 (podman builds the images)",
    ),
]

SERVICE = "intake"
PASSWORD = "k8s-" + secrets.token_hex(8)


def _secret(name: str, data: dict[str, bytes], *, for_env: bool) -> str:
    """A podman secret as podman 4.3's `kube play` reads it: for `secretKeyRef`, a JSON map of
    base64 values; for a secret volume, a Secret whose `data` holds the files as they are."""
    if for_env:
        content: dict[str, Any] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    else:
        content = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {k: v.decode() for k, v in data.items()},
        }
    containers.podman("secret", "create", name, "-", input=json.dumps(content))
    return name


def _renamed(manifest: Manifest, suffix: str, secrets_: dict[str, str]) -> Manifest:
    """A copy of a workload whose ConfigMap and Secret references carry this run's names."""
    copied = copy.deepcopy(manifest)
    pod = copied["spec"]["template"]["spec"]
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                source["configMapRef"]["name"] += suffix
            if "secretRef" in source:  # the optional minqing-settings: none here
                container["envFrom"].remove(source)
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                reference["name"] = secrets_[reference["name"]]
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            volume["secret"]["secretName"] = secrets_[volume["secret"]["secretName"]]
            volume["secret"]["optional"] = False
    return copied


def _for_podman(
    manifests: list[Manifest], suffix: str, secrets_: dict[str, str]
) -> dict[str, list[Manifest]]:
    """The migration pod, intake's and the front door's Deployments, each with the ConfigMap
    it reads, as podman plays them (the changes the module's docstring lists)."""
    config = copy.deepcopy(of_kind(manifests, "ConfigMap")["minqing-config"])
    config["metadata"]["name"] += suffix
    config["data"].update({"PGSSLMODE": "disable", "MINQING_STREAM_REPLICAS": "1"})
    (job,) = of_kind(manifests, "Job").values()
    pod: Manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"minqing-migrate{suffix}"},
        "spec": _renamed(job, suffix, secrets_)["spec"]["template"]["spec"],
    }
    pod["spec"]["restartPolicy"] = "Never"
    played = {"migrate": [config, pod]}
    deployments = of_kind(manifests, "Deployment")
    for name in (SERVICE, "frontdoor"):
        deployment = _renamed(deployments[f"minqing-{name}"], suffix, secrets_)
        deployment["metadata"]["name"] += suffix
        played[name] = [config, deployment]
    caddyfiles = [m for m in of_kind(manifests, "ConfigMap").values() if "Caddyfile" in m["data"]]
    played["frontdoor"][0] = copy.deepcopy(caddyfiles[0])
    played["frontdoor"][0]["metadata"]["name"] += suffix
    volumes = played["frontdoor"][1]["spec"]["template"]["spec"]["volumes"]
    for volume in volumes:
        if "configMap" in volume:
            volume["configMap"]["name"] = played["frontdoor"][0]["metadata"]["name"]
    for objects in played.values():
        workload = objects[1]
        spec = (
            workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]
        )
        for container in spec["containers"]:
            container["image"] = containers.IMAGE  # what containers.build_image() built
            # Podman 4.3 publishes every containerPort on the host (8081 may be taken there):
            # the pods are reached at their own addresses on the network instead.
            container.pop("ports", None)
    return played


def _play(stack: ExitStack, objects: list[Manifest], path: Path, network: str) -> None:
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    stack.callback(containers.podman, "kube", "down", str(path), check=False)
    containers.podman("kube", "play", "--network", network, str(path), timeout=300)


def _address(container: str, network: str) -> str:
    found = containers.podman(
        "inspect",
        "--format",
        f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
        container,
    )
    return found.stdout.strip()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=3).status_code
    except httpx.HTTPError:
        return 0


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="minqing-kube-") as path:
        yield Path(path)


def test_the_rendered_deployments_run_under_podman_and_serve_through_the_front_door(
    scratch: Path,
) -> None:
    if reason := containers.unavailable():
        pytest.skip(reason)
    containers.build_image()
    support = containers.build_support_images()
    manifests = render(BASE)
    suffix = "-" + secrets.token_hex(3)
    network = f"minqing-kube{suffix}"
    with ExitStack() as stack:
        containers.podman("network", "create", network)
        stack.callback(containers.podman, "network", "rm", "-f", network, check=False)
        # `nats`: a NATS server that lets in only the users `minqing nats-config` writes.
        access = scratch / "nats"
        seeds = write_access(access, nats_users(Settings()))
        (access / "nats.conf").write_text(
            'listen: "0.0.0.0:4222"\n'
            'jetstream { store_dir: "/tmp/jetstream", sync_interval: always }\n'
            'include "access.conf"\n'
        )
        nats = f"minqing-kube-nats{suffix}"
        stack.callback(containers.podman, "rm", "-f", nats, check=False)
        containers.podman(
            "run", "-d", "--name", nats, "--network", network, "--network-alias", "nats",
            "-v", f"{access}:/etc/nats:ro", support["MINQING_NATS_IMAGE"],
            "-c", "/etc/nats/nats.conf",
        )  # fmt: skip
        # `minqing-db-rw`: PostgreSQL, its database `minqing` owned by `minqing`, a password.
        postgres = f"minqing-kube-postgres{suffix}"
        stack.callback(containers.podman, "rm", "-f", postgres, check=False)
        containers.podman(
            "run", "-d", "--name", postgres, "--network", network,
            "--network-alias", "minqing-db-rw", "-e", "POSTGRES_USER=minqing",
            "-e", f"POSTGRES_PASSWORD={PASSWORD}", "-e", "POSTGRES_DB=minqing",
            support["MINQING_POSTGRES_IMAGE"],
        )  # fmt: skip
        # The Secrets the manifests name, under this run's names.
        names = {
            "minqing-db-app": f"minqing-db-app{suffix}",
            "minqing-db-ca": f"minqing-db-ca{suffix}",
            "minqing-nats-credentials": f"minqing-nats-credentials{suffix}",
        }
        for name in names.values():
            stack.callback(containers.podman, "volume", "rm", "-f", name, check=False)
            stack.callback(containers.podman, "secret", "rm", name, check=False)
        _secret(
            names["minqing-db-app"],
            {"username": b"minqing", "password": PASSWORD.encode()},
            for_env=True,
        )
        _secret(names["minqing-db-ca"], {"ca.crt": b"(unused: PGSSLMODE=disable)"}, for_env=False)
        _secret(
            names["minqing-nats-credentials"],
            {f"{SERVICE}.nk": seeds[f"service/{SERVICE}"].read_bytes()},
            for_env=False,
        )
        played = _for_podman(manifests, suffix, names)
        # A ConfigMap mounted as a volume (the Caddyfile) becomes a podman volume of its name.
        caddyfile = played["frontdoor"][0]["metadata"]["name"]
        stack.callback(containers.podman, "volume", "rm", "-f", caddyfile, check=False)

        # The migrations (the Job's pod), played again until PostgreSQL takes connections.
        def migrated() -> str:
            path = scratch / "migrate.yaml"
            _play(stack, played["migrate"], path, network)
            container = f"minqing-migrate{suffix}-migrate"
            code = containers.podman("wait", container, timeout=300).stdout.strip()
            logs = containers.podman("logs", container, check=False)
            containers.podman("kube", "down", str(path), check=False)
            return code + "\n" + logs.stdout + logs.stderr

        assert "Traceback" not in poll(migrated, lambda out: out.startswith("0\n"), within=120)

        # intake, two replicas: each ready on its readiness probe's path and port.
        _play(stack, played[SERVICE], scratch / f"{SERVICE}.yaml", network)
        deployment = played[SERVICE][1]
        replicas = deployment["spec"]["replicas"]
        assert replicas == 2
        pod_spec = deployment["spec"]["template"]["spec"]
        probe = pod_spec["containers"][0]["readinessProbe"]["httpGet"]
        port = Settings.model_fields[f"{SERVICE}_port"].default
        intake = [f"{deployment['metadata']['name']}-pod-{i}-{SERVICE}" for i in range(replicas)]
        for container in intake:
            url = f"http://{_address(container, network)}:{port}{probe['path']}"
            try:
                poll(lambda url=url: _status(url), lambda status: status == 200, within=180)
            except AssertionError as never:
                logs = containers.podman("logs", container, check=False)
                raise AssertionError(
                    f"{container} never ready:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
                ) from never
            assert httpx.get(url, timeout=3).json()["service"] == SERVICE
            user = containers.podman("exec", container, "id", "-u").stdout.strip()
            assert user == str(pod_spec["securityContext"]["runAsUser"])
            assert containers.podman("exec", container, "touch", "/x", check=False).returncode
            assert not containers.podman(
                "exec", container, "touch", "/tmp/x", check=False
            ).returncode

        # The first operator, as docs/operator/kubernetes.md adds it.
        added = containers.podman(
            "exec", intake[0], "minqing", "user", "add", "operator", "--unit", "town",
            "--role", "operator",
        )  # fmt: skip
        assert "Added person:operator (operator@town)" in added.stdout

        # The front door: the generated Caddyfile, intake's pod under its Service's name.
        door = played["frontdoor"][1]
        door_spec = door["spec"]["template"]["spec"]
        door_spec["hostAliases"] = [
            {"ip": _address(intake[0], network), "hostnames": [f"minqing-{SERVICE}"]}
        ]
        _play(stack, played["frontdoor"], scratch / "frontdoor.yaml", network)
        rendered = of_kind(manifests, "Deployment")["minqing-frontdoor"]["spec"]["template"]
        (listening,) = rendered["spec"]["containers"][0]["ports"]
        front = f"{door['metadata']['name']}-pod-0-caddy"
        url = f"http://{_address(front, network)}:{listening['containerPort']}"
        poll(lambda: _status(f"{url}/intake/openapi.json"), lambda s: s == 200, within=60)
        document = httpx.get(f"{url}/intake/openapi.json", timeout=3)
        assert "/api/v1/reports" in document.json()["paths"]
        assert document.headers["x-content-type-options"] == "nosniff"
        refused = httpx.get(f"{url}/healthz", timeout=3)  # not routed, by design
        assert refused.status_code == 404
        assert refused.json() == {"detail": "Not Found: no such path at the front door"}
        user = containers.podman("exec", front, "id", "-u").stdout.strip()
        assert user == str(door_spec["securityContext"]["runAsUser"])
