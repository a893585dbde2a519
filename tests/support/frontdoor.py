"""The front door in tests: a real caddy (EmbeddedCaddy) in front of apps served in this
process, a recorder of what each service received, and a self-signed certificate."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from minqing.services.frontdoor import FrontDoor, Route, write
from minqing.shared.embedded.caddy import EmbeddedCaddy
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import ServiceName, Settings


@dataclass
class Seen:
    """One request as a service received it (after uvicorn read the X-Forwarded-* headers)."""

    service: ServiceName
    method: str
    path: str
    route: str | None  # the path template of the app's route it matched, if any
    scheme: str
    client: str | None
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""


def flat_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """An app's routes, the included routers' opened up (FastAPI 0.163 keeps an included
    router as one route; older versions copied its routes in)."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from flat_routes(candidates())
        else:
            yield route


class Recorder:
    """Wraps a service's app: remembers every request it receives, then lets it through."""

    def __init__(self, service: ServiceName, app: Any, seen: list[Seen]) -> None:
        self.service = service
        self.app = app
        self.seen = seen
        self.routes = list(flat_routes(app.routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            matched = None
            for route in self.routes:
                match, _ = route.matches(scope)
                if match is Match.FULL:
                    matched = getattr(route, "path", None)
                    break
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            client = scope.get("client")
            self.seen.append(
                Seen(
                    self.service,
                    scope["method"],
                    scope["path"],
                    matched,
                    scope["scheme"],
                    client[0] if client else None,
                    headers,
                    scope["query_string"].decode("latin-1"),
                )
            )
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, lifespan: str = "off") -> AsyncIterator[int]:
    """Serve an ASGI app under uvicorn on a free loopback port, as `minqing serve` does (the
    X-Forwarded-* headers of 127.0.0.1 trusted); yield the port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def front_door(
    directory: Path,
    upstreams: Mapping[ServiceName, str],
    *,
    tls: tuple[Path, Path] | None = None,
    settings: Settings | None = None,
) -> Iterator[tuple[FrontDoor, EmbeddedCaddy]]:
    """A real caddy running the generated Caddyfile in front of ``upstreams``."""
    door = FrontDoor(
        listen=f"127.0.0.1:{free_port()}",
        upstreams=dict(upstreams),
        tls_cert_file=tls[0] if tls else None,
        tls_key_file=tls[1] if tls else None,
    )
    config = directory / "Caddyfile"
    write(config, door, settings)
    with EmbeddedCaddy(directory / "caddy", config, door.listen) as caddy:
        yield door, caddy


def concrete(route: Route) -> str:
    """A path people could send for this route: each parameter given a plausible value."""
    path = route.front.replace("{fmt}", "json").replace("/*", "/app.js")
    while "{" in path:
        start = path.index("{")
        path = path[:start] + "01K0FRONTD00R0000000000000" + path[path.index("}", start) + 1 :]
    return path


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minqing front door (test)")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "front.crt", directory / "front.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file
