"""The Kubernetes base, run for real where it can be: `podman kube play` plays the rendered
migration Job's pod and intake's Deployment from the image the Containerfile builds, against
a NATS server that lets in only Minqing's users and a PostgreSQL with password
authentication, and intake becomes ready on the readiness probe's path.

What this proves of the manifests: the image runs `minqing migrate` and `minqing serve
intake` as the rendered command says; as the non-root user, on a read-only root file system
with /tmp its only writable place; with its settings from the ConfigMap, its database user
and password from the Secret's keys (PGUSER, PGPASSWORD) and its own NATS seed from the
Secret mounted where MINQING_NATS_CREDENTIALS points (NATS refuses anyone else, and /readyz
is 200 only with NATS, the database and every consumer attached).

What it changes in the rendered objects, because podman is not a cluster (each change is in
``_for_podman``): the pods use the host's network (no cluster DNS or Services: NATS and
PostgreSQL are on loopback, intake on a free port), one replica (two would share one port),
PostgreSQL without TLS (PGSSLMODE=disable: the test server has no certificate), no
port mappings (podman refuses them on the host's network), one stream
copy (one NATS server), names given a suffix of this run, the Job's pod template played as a
Pod (podman plays no Jobs), and secret volumes marked ``optional: false`` (podman 4.3 panics
on a secret volume without it). Podman 4.3 reads a secret for environment variables as a
JSON map of base64 values, and writes a secret volume's files from a Secret's ``data``
without decoding it: ``_secret`` stores each accordingly.
Not run here: NetworkPolicies, PodDisruptionBudgets, Services, probes by a kubelet."""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from minqing.services.natsconfig import nats_users
from minqing.shared.embedded.nats import nats_server_binary
from minqing.shared.messaging.access import write_access
from minqing.shared.service.infra import free_port
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
    manifests: list[Manifest], suffix: str, secrets_: dict[str, str], settings: dict[str, str]
) -> tuple[list[Manifest], list[Manifest]]:
    """The migration pod and the service's Deployment, each with its ConfigMap, as podman
    plays them (the changes the module's docstring lists)."""
    config = copy.deepcopy(of_kind(manifests, "ConfigMap")["minqing-config"])
    config["metadata"]["name"] += suffix
    config["data"].update(settings)
    (job,) = of_kind(manifests, "Job").values()
    migrate = _renamed(job, suffix, secrets_)
    pod: Manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"minqing-migrate{suffix}"},
        "spec": {**migrate["spec"]["template"]["spec"], "hostNetwork": True},
    }
    pod["spec"]["restartPolicy"] = "Never"
    deployment = _renamed(of_kind(manifests, "Deployment")[f"minqing-{SERVICE}"], suffix, secrets_)
    deployment["metadata"]["name"] += suffix
    deployment["spec"]["replicas"] = 1
    deployment["spec"]["template"]["spec"]["hostNetwork"] = True
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # On the host's network podman maps no ports (it refuses to); the service listens on
    # MINQING_<SERVICE>_PORT as set in the ConfigMap.
    del container["ports"]
    for each in (*pod["spec"]["containers"], container):
        each["image"] = containers.IMAGE  # what containers.build_image() built
    return [config, pod], [config, deployment]


def _play(stack: ExitStack, objects: list[Manifest], directory: Path, name: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    stack.callback(containers.podman, "kube", "down", str(path), check=False)
    containers.podman("kube", "play", str(path), timeout=300)
    return path


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="minqing-kube-") as path:
        yield Path(path)


def test_the_rendered_deployment_runs_under_podman_and_becomes_ready(scratch: Path) -> None:
    if reason := containers.unavailable():
        pytest.skip(reason)
    containers.build_image()
    postgres_image = containers.build_support_images()["MINQING_POSTGRES_IMAGE"]
    manifests = render(BASE)
    suffix = "-" + secrets.token_hex(3)
    with ExitStack() as stack:
        # NATS, letting in only the users `minqing nats-config` writes.
        access = scratch / "nats"
        seeds = write_access(access, nats_users(Settings()))
        nats_port = free_port()
        (access / "nats.conf").write_text(
            f'listen: "127.0.0.1:{nats_port}"\n'
            f'jetstream {{ store_dir: "{scratch / "js"}", sync_interval: always }}\n'
            'include "access.conf"\n'
        )
        nats = subprocess.Popen(
            [str(nats_server_binary()), "-c", str(access / "nats.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(nats.wait, 30)
        stack.callback(nats.terminate)
        # PostgreSQL with a password, on loopback (the compose test's stand-in image).
        pg_port = free_port()
        pg_name = f"minqing-kube-postgres{suffix}"
        containers.podman(
            "run", "-d", "--rm", "--name", pg_name, "--network", "host",
            "-e", "POSTGRES_USER=minqing", "-e", f"POSTGRES_PASSWORD={PASSWORD}",
            "-e", "POSTGRES_DB=minqing", postgres_image,
            "postgres", "-c", f"port={pg_port}", "-c", "listen_addresses=127.0.0.1",
        )  # fmt: skip
        stack.callback(containers.podman, "rm", "-f", pg_name, check=False)
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
        port = free_port()
        settings = {
            "MINQING_NATS_URL": f"nats://127.0.0.1:{nats_port}",
            "MINQING_DATABASE_URL": f"postgresql+asyncpg://127.0.0.1:{pg_port}/minqing",
            "PGSSLMODE": "disable",
            "MINQING_STREAM_REPLICAS": "1",
            f"MINQING_{SERVICE.upper()}_PORT": str(port),
        }
        migration, service = _for_podman(manifests, suffix, names, settings)

        # The migrations (the Job's pod), until PostgreSQL takes connections.
        def migrated() -> str:
            _play(stack, migration, scratch, "migrate")
            container = f"minqing-migrate{suffix}-migrate"
            code = containers.podman("wait", container, timeout=300).stdout.strip()
            logs = containers.podman("logs", container, check=False)
            containers.podman("kube", "down", str(scratch / "migrate.yaml"), check=False)
            return code + "\n" + logs.stdout + logs.stderr

        done = poll(migrated, lambda out: out.startswith("0\n"), within=120)
        assert "Traceback" not in done

        _play(stack, service, scratch, SERVICE)
        container = f"minqing-{SERVICE}{suffix}-pod-0-{SERVICE}"
        (deployment,) = [m for m in service if m["kind"] == "Deployment"]
        probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]

        def readiness() -> int:
            try:
                url = f"http://127.0.0.1:{port}{probe['httpGet']['path']}"
                return httpx.get(url, timeout=3).status_code
            except httpx.HTTPError:
                return 0

        try:
            poll(readiness, lambda status: status == 200, within=180)
        except AssertionError as never:
            logs = containers.podman("logs", container, check=False)
            raise AssertionError(
                f"{SERVICE} never ready:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
            ) from never
        body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).json()
        assert body["status"] == "ready" and body["service"] == SERVICE
        user = containers.podman("exec", container, "id", "-u").stdout.strip()
        assert user == str(deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"])
        assert containers.podman("exec", container, "touch", "/x", check=False).returncode != 0
        assert containers.podman("exec", container, "touch", "/tmp/x", check=False).returncode == 0
