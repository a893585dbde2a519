"""The ``minqing`` command: the commands every deployment has (``shared/cli``: migrate, db,
up) and each service's own, registered here, where the services are known: serving one,
intake's (import, open311-key), the projection's (audit, projection rebuild), the whole
system's AsyncAPI document assembled from each service's declaration, and the front
door's Caddyfile routed from each service's OpenAPI document."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

import typer

from minqing.services import natsconfig
from minqing.services.followup import cli as followup_cli
from minqing.services.intake import cli as intake_cli
from minqing.services.projection import cli as projection_cli
from minqing.shared.backup import cli as backup_cli
from minqing.shared.cli.main import LogLevel, app, checked_log_level, service_name
from minqing.shared.identity import cli as identity_cli
from minqing.shared.service import logs, tracing
from minqing.shared.service.settings import SERVICES, ServiceName, Settings

intake_cli.register(app)
followup_cli.register(app)
projection_cli.register(app)
natsconfig.register(app)
identity_cli.register(app)
backup_cli.register(app)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}.")],
    log_level: LogLevel = "info",
) -> None:
    """Run one service's HTTP API and consumers (configured by MINQING_* variables)."""
    name = service_name(service)
    level = checked_log_level(log_level)
    settings = Settings()
    # Our own modules log what matters (dead letters, retries, relay failures): show them,
    # with uvicorn's, as JSON lines (MINQING_LOG_FORMAT); traces if a collector is set.
    logs.configure(name, settings.log_format, "DEBUG" if level == "trace" else level.upper())
    tracing.configure(settings, name)
    module = importlib.import_module(f"minqing.services.{name}.app")
    api = module.create_app(settings)
    import uvicorn

    from minqing.shared.service.runtime import STOP_GRACE_SECONDS

    # uvicorn's records go through the root logger's handler (log_config=None); its access
    # log is replaced by ours (minqing.access), which logs route templates, never paths.
    uvicorn.run(
        api,
        host=settings.host,
        port=settings.port(name),
        log_level=level,
        log_config=None,
        access_log=False,
        # On SIGTERM, requests under way get this long before the lifespan's own bounded
        # shutdown (consumers, relay); a rolling restart's replica leaves within both.
        timeout_graceful_shutdown=int(STOP_GRACE_SECONDS),
    )


@app.command(name="asyncapi")
def asyncapi_command() -> None:
    """Print the event contract as an AsyncAPI 3 JSON document."""
    from minqing.services import catalog

    document = catalog.document(Settings())
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


@app.command(name="frontdoor")
def frontdoor_command(
    output: Annotated[
        Path | None, typer.Option(help="Write the Caddyfile here; default: print it.")
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(help="host:port the front door listens on; default MINQING_FRONT_HOST:PORT."),
    ] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="SERVICE=host:port, once per service to move, once per replica (or its "
            "replicas separated by spaces) to spread its requests over them; default each "
            "service's MINQING_HOST and MINQING_<SERVICE>_PORT."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate (chain): serve HTTPS with HSTS.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's PEM key.")] = None,
) -> None:
    """Write the front door's Caddyfile: every service's paths, from their OpenAPI
    documents, routed to the service; security headers; TLS when a certificate is given."""
    from minqing.services import frontdoor

    settings = Settings()
    door = frontdoor.FrontDoor.configured(settings)
    upstreams = dict(door.upstreams)
    given: dict[ServiceName, list[str]] = {}
    for each in upstream or []:
        name, _, addresses = each.partition("=")
        replicas = addresses.split()
        if not replicas or any(":" not in address for address in replicas):
            raise typer.BadParameter(
                f"{each!r}: expected SERVICE=host:port", param_hint="--upstream"
            )
        given.setdefault(service_name(name), []).extend(replicas)
    for name, replicas in given.items():
        upstreams[name] = " ".join(dict.fromkeys(replicas))
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither")
    door = frontdoor.FrontDoor(
        listen=listen or door.listen,
        upstreams=upstreams,
        tls_cert_file=(tls_cert.resolve() if tls_cert else door.tls_cert_file),
        tls_key_file=(tls_key.resolve() if tls_key else door.tls_key_file),
    )
    if ":" not in door.listen:
        raise typer.BadParameter(f"{door.listen!r}: expected host:port", param_hint="--listen")
    text = frontdoor.write(output, door, settings)
    if output is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"Wrote {output}: the front door at {door.url}", err=True)


def main() -> None:
    """Entry point of the ``minqing`` console script."""
    app(prog_name="minqing")


if __name__ == "__main__":
    main()
