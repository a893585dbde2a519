"""The Kubernetes manifests of deploy/ as the tests read them: Kustomize output rendered by the
real tool, and the little of Kubernetes' semantics the checks need (label selectors,
NetworkPolicy peers)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import ROOT

K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
Manifest = dict[str, Any]


def kustomize_command() -> list[str] | None:
    """The real Kustomize: a standalone ``kustomize`` (``build``), else the one built into
    ``kubectl`` (``kubectl kustomize``, Kustomize v5 since kubectl 1.27); None if neither."""
    if found := shutil.which("kustomize"):
        return [found, "build"]
    if found := shutil.which("kubectl"):
        return [found, "kustomize"]
    return None


def render(directory: Path) -> list[Manifest]:
    """What ``kubectl apply -k directory`` would send: every object, parsed."""
    command = kustomize_command()
    if command is None:
        raise RuntimeError(
            "no kustomize: install kubectl (Kustomize is built in) or the kustomize binary"
        )
    done = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} {directory} failed: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(manifests: Iterable[Manifest], kind: str) -> dict[str, Manifest]:
    """The objects of one kind, by name."""
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects these
    labels; an empty selector selects everything, a missing one (None) nothing."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(workload: Manifest) -> dict[str, str]:
    """The labels of a Deployment's or Job's pods."""
    return dict(workload["spec"]["template"]["metadata"].get("labels") or {})
