"""The ``minqing`` command: the commands every deployment has (``shared/cli``: migrate, db,
up) and each service's own, registered here, where the services are known: serving one,
intake's (import, open311-key), the projection's (audit, projection rebuild), and the
whole system's AsyncAPI document assembled from each service's declaration."""

from __future__ import annotations

import importlib
import json
import logging
from typing import Annotated

import typer

from minqing.services.intake import cli as intake_cli
from minqing.services.projection import cli as projection_cli
from minqing.shared.cli.main import LogLevel, app, checked_log_level, service_name
from minqing.shared.service.settings import SERVICES, Settings

intake_cli.register(app)
projection_cli.register(app)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}.")],
    log_level: LogLevel = "info",
) -> None:
    """Run one service's HTTP API and consumers (configured by MINQING_* variables)."""
    name = service_name(service)
    level = checked_log_level(log_level)
    settings = Settings()
    # Our own modules log what matters (dead letters, retries, relay failures): show them.
    logging.basicConfig(
        level="DEBUG" if level == "trace" else level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(f"minqing.services.{name}.app")
    api = module.create_app(settings)
    import uvicorn

    uvicorn.run(api, host=settings.host, port=settings.port(name), log_level=level)


@app.command(name="asyncapi")
def asyncapi_command() -> None:
    """Print the event contract as an AsyncAPI 3 JSON document."""
    from minqing.services import catalog

    document = catalog.document(Settings())
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def main() -> None:
    """Entry point of the ``minqing`` console script."""
    app(prog_name="minqing")


if __name__ == "__main__":
    main()
