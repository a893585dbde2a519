"""The front door: one origin for people, a Caddy reverse proxy in front of the four services.

Which service answers which path is read from the services' own OpenAPI documents (plus the
desk's pages, which the projection serves outside its document), never kept by hand:

- a path exactly one service serves is routed to it as is (``/api/v1/reports`` to intake);
- a path several services serve (the operations endpoints every service has: its dead
  letters, ingress outcomes, AsyncAPI document) is reached under the service's name,
  ``/<service>/...``, the prefix stripped before proxying; so is each one's
  ``/openapi.json``; any other path two services serve is an error (:class:`AmbiguousPath`);
- ``/healthz``, ``/readyz`` and ``/metrics`` are not routed: they are for the supervisor and
  the scraper on the services' own loopback ports, not for the public;
- anything else is a 404 from the front door itself.

The Caddyfile also sets the security headers on every answer (a Content-Security-Policy
without inline script, nosniff, a referrer policy, frame denial, no ``Server``), serves TLS
when a certificate is configured (HSTS then), and never lets Caddy obtain certificates
(ACME) or install a local CA. ``minqing frontdoor`` writes it; ``deploy/Caddyfile`` is the
copy for the default addresses, and ``minqing up`` runs one (``shared/embedded/caddy.py``).
"""

from __future__ import annotations

import importlib
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minqing.shared.service.settings import SERVICES, ServiceName, Settings

# Paths every service has, for operations and integrators: each is reached under its
# service's name. A path two services serve that is tagged otherwise must be renamed.
OPERATIONS_TAGS = frozenset({"health", "contract", "operations", "ingress"})
# Never routed from outside: liveness, readiness and metrics are for the process supervisor
# and the scraper, which reach each service on its own (loopback) port.
INTERNAL = ("/healthz", "/readyz", "/metrics")
# The desk: pages the projection serves outside its OpenAPI document.
DESK: tuple[str, ...] = ("/", "/dashboard/*")
DESK_OWNER: ServiceName = "projection"
OPENAPI = "/openapi.json"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",  # no inline script, no inline event handlers, no eval
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    # Same-origin requests keep their Referer and Origin (a CSRF check may read them);
    # nothing (a feedback token in a URL, say) leaks to another site.
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)
# Over TLS only: a browser that saw it keeps to HTTPS for a year.
HSTS = ("Strict-Transport-Security", "max-age=31536000")
# Removed from every answer: which server software runs (Caddy's and uvicorn's Server, Via).
REMOVED_HEADERS = ("Server", "Via")
NOT_FOUND_BODY = '{"detail": "Not Found: no such path at the front door"}'


class AmbiguousPath(ValueError):
    """Two services serve the same path, and it is not an operations endpoint."""


@dataclass(frozen=True)
class Route:
    """One path at the front door: who answers it, and under which path it reaches them."""

    service: ServiceName
    path: str  # as the service names it (OpenAPI: ``/api/v1/issues/{issue_id}``)
    prefixed: bool  # reached as ``/<service><path>``, the prefix stripped before proxying

    @property
    def front(self) -> str:
        """The path as people reach it at the front door."""
        return f"/{self.service}{self.path}" if self.prefixed else self.path

    @property
    def pattern(self) -> str:
        """The path as a Caddy path matcher: each ``{parameter}`` one or more characters of
        one segment (``*?``). Under a service's name, a path that ends in a parameter is
        matched as a prefix up to its first parameter (``*``): what a department system
        names there (a CloudEvent id) may hold slashes, and nothing else is under that
        name but this service."""
        if self.prefixed and self.path.endswith("}"):
            return self.path[: self.path.index("{")].lower() + "*"
        return re.sub(r"\{[^{}/]+\}", "*?", self.path).lower()


@dataclass(frozen=True)
class FrontDoor:
    """Where the front door listens, where each service is, and its certificate if any."""

    listen: str  # host:port
    upstreams: Mapping[
        ServiceName, str
    ]  # service -> "host:port", or its replicas' separated by spaces
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def url(self) -> str:
        """The one URL people use: the desk."""
        host, port = self.listen.rsplit(":", 1)
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
        return f"{'https' if self.tls else 'http'}://{shown}:{port}/"

    @classmethod
    def configured(cls, settings: Settings) -> FrontDoor:
        """The addresses the settings give (MINQING_FRONT_*, MINQING_*_PORT, MINQING_TLS_*)."""
        return cls(
            listen=f"{settings.front_host}:{settings.front_port}",
            upstreams={name: f"{settings.host}:{settings.port(name)}" for name in SERVICES},
            tls_cert_file=settings.tls_cert_file,
            tls_key_file=settings.tls_key_file,
        )

    @classmethod
    def default(cls) -> FrontDoor:
        """The default addresses, whatever the environment says (deploy/Caddyfile's)."""
        fields = Settings.model_fields
        host = fields["host"].default
        return cls(
            listen=f"{fields['front_host'].default}:{fields['front_port'].default}",
            upstreams={name: f"{host}:{fields[f'{name}_port'].default}" for name in SERVICES},
        )


def documents(settings: Settings) -> dict[ServiceName, dict[str, Any]]:
    """Each service's OpenAPI document (building an app connects to nothing)."""
    found: dict[ServiceName, dict[str, Any]] = {}
    for name in SERVICES:
        module = importlib.import_module(f"minqing.services.{name}.app")
        found[name] = module.create_app(settings).openapi()
    return found


def routing_table(docs: Mapping[ServiceName, Mapping[str, Any]]) -> list[Route]:
    """Every path people reach, with its service: from the OpenAPI documents and the desk."""
    owners: dict[str, list[ServiceName]] = defaultdict(list)
    tags: dict[str, set[str]] = defaultdict(set)
    for service in SERVICES:
        for path, operations in docs[service]["paths"].items():
            owners[path].append(service)
            for operation in operations.values():
                tags[path].update(operation.get("tags") or ())
    routes: list[Route] = []
    for path, services in owners.items():
        if path in INTERNAL:
            continue
        if len(services) == 1:
            routes.append(Route(services[0], path, prefixed=False))
        elif tags[path] and tags[path] <= OPERATIONS_TAGS:
            routes.extend(Route(service, path, prefixed=True) for service in services)
        else:
            raise AmbiguousPath(
                f"{path} is served by {', '.join(services)}: give each its own path "
                f"(only operations endpoints, tagged {sorted(OPERATIONS_TAGS)}, are shared)"
            )
    clash = [path for path in DESK if path in owners]
    if clash:
        raise AmbiguousPath(f"the desk's {clash} are also in an OpenAPI document")
    routes.extend(Route(DESK_OWNER, path, prefixed=False) for path in DESK)
    routes.extend(Route(service, OPENAPI, prefixed=True) for service in SERVICES)
    return routes


def routes(settings: Settings | None = None) -> list[Route]:
    """The routing table of the system as built now."""
    return routing_table(documents(settings or Settings()))


# ------------------------------------------------------------------------------- Caddyfile


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _headers_snippet(tls: bool) -> list[str]:
    lines = ["(security_headers) {", "\theader {", "\t\tdefer"]
    for name, value in (*SECURITY_HEADERS, *([HSTS] if tls else [])):
        lines.append(f"\t\t{name} {_quoted(value)}")
    lines += [f"\t\t-{name}" for name in REMOVED_HEADERS]
    return [*lines, "\t}", "}"]


def _matcher(name: str, patterns: Sequence[str], indent: str) -> list[str]:
    return [f"{indent}@{name} {{", *(f"{indent}\tpath {p}" for p in patterns), f"{indent}}}"]


# Caddy drops an idle connection to a service before the service does (uvicorn closes an
# idle keep-alive connection after 5 s): were it the other way round, a request written into
# a connection the service had just closed would come back as a 502.
UPSTREAM_KEEPALIVE = "3s"


# Replicas of a service: requests go round them; one that cannot be reached is passed over
# for the next (a request that never reached a replica is safe to send again, whatever its
# method), kept out for FAIL_DURATION, and checked every HEALTH_INTERVAL on /healthz (the
# process answers; /readyz would take every replica out while NATS is away, when they can
# still answer reads).
LB_TRY_DURATION, FAIL_DURATION, HEALTH_INTERVAL = "5s", "10s", "5s"


def _reverse_proxy(upstream: str, indent: str) -> list[str]:
    replicas = upstream.split()
    spread = (
        [
            f"{indent}\tlb_policy round_robin",
            f"{indent}\tlb_try_duration {LB_TRY_DURATION}",
            f"{indent}\tfail_duration {FAIL_DURATION}",
            f"{indent}\thealth_uri /healthz",
            f"{indent}\thealth_interval {HEALTH_INTERVAL}",
        ]
        if len(replicas) > 1
        else []
    )
    return [
        f"{indent}reverse_proxy {' '.join(replicas)} {{",
        *spread,
        f"{indent}\ttransport http {{",
        f"{indent}\t\tkeepalive {UPSTREAM_KEEPALIVE}",
        f"{indent}\t}}",
        f"{indent}}}",
    ]


def _proxy(matcher: str, upstream: str, indent: str) -> list[str]:
    return [
        f"{indent}handle @{matcher} {{",
        *_reverse_proxy(upstream, indent + "\t"),
        f"{indent}}}",
    ]


def caddyfile(routes: Sequence[Route], door: FrontDoor) -> str:
    """The Caddyfile of the front door for this routing table and these addresses."""
    if (door.tls_cert_file is None) != (door.tls_key_file is None):
        raise ValueError("TLS needs both a certificate file and its key file")
    host, port = door.listen.rsplit(":", 1)
    scheme = "https" if door.tls else "http"
    lines = [
        "# The front door (Caddy): one origin for the desk and every API.",
        "# Written by `minqing frontdoor` from the services' OpenAPI documents: do not edit,",
        "# run it again (docs/operator/front-door.md). In a path, `*?` is a path parameter",
        "# (one or more characters of one segment); only a final `*` matches a prefix.",
        "{",
        "\t# Never obtain certificates (ACME) nor redirect to HTTPS; never install a local CA",
        "\t# into a trust store. Nothing listens for configuration changes (no admin API).",
        "\tauto_https off",
        "\tskip_install_trust",
        "\tadmin off",
        "\tpersist_config off",
        "\tgrace_period 5s",
        "}",
        "",
        *_headers_snippet(door.tls),
        "",
        "(not_found) {",
        "\theader Content-Type application/json",
        f"\trespond `{NOT_FOUND_BODY}` 404",
        "}",
        "",
        f"{scheme}://:{port} {{",
    ]
    if host:
        lines.append(f"\tbind {host.strip('[]')}")
    if door.tls:
        lines.append(f"\ttls {_quoted(str(door.tls_cert_file))} {_quoted(str(door.tls_key_file))}")
    lines += [
        "\timport security_headers",
        "",
        "\t# A trailing slash is dropped, as the services drop it: /api/v1/reports/ is a report.",
        "\t@trailing path_regexp ^/.+/$",
        "\turi @trailing strip_suffix /",
        "",
    ]
    direct = [r for r in routes if not r.prefixed]
    prefixed = [r for r in routes if r.prefixed]
    for service in SERVICES:
        mine = [r.pattern for r in direct if r.service == service]
        if mine:
            lines += [f"\t# {service}: the paths only it serves"]
            lines += _matcher(service, mine, "\t")
            lines += _proxy(service, door.upstreams[service], "\t")
            lines.append("")
    for service in SERVICES:
        mine = [r.pattern for r in prefixed if r.service == service]
        if mine:
            lines += [
                f"\t# {service}: its operations endpoints, as /{service}/..., prefix stripped",
                f"\thandle_path /{service}/* {{",
                *_matcher("routed", mine, "\t\t"),
                *_proxy("routed", door.upstreams[service], "\t\t"),
                "\t\thandle {",
                "\t\t\timport not_found",
                "\t\t}",
                "\t}",
                "",
            ]
    lines += [
        "\t# Anything else, /healthz, /readyz and /metrics among them: not here.",
        "\thandle {",
        "\t\timport not_found",
        "\t}",
        "",
        "\t# An error of the front door itself (a service down: 502): headers as on any answer.",
        "\thandle_errors {",
        "\t\timport security_headers",
        "\t\theader Content-Type application/json",
        '\t\trespond `{"detail": "{err.status_text}"}` {err.status_code}',
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def write(path: Path | None, door: FrontDoor, settings: Settings | None = None) -> str:
    """The Caddyfile for the system as built now, written to ``path`` if given."""
    text = caddyfile(routes(settings), door)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text
