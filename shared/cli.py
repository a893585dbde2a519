"""The ``minqing`` command: serve one service, run migrations, or bring the whole system up."""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import shlex
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from shared.embedded import EmbeddedNats, EmbeddedPostgres
from shared.infra import ensure_database, free_port, port_is_free
from shared.settings import SERVICES, ServiceName, Settings

DEFAULT_NATS_PORT = 4222
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

app = typer.Typer(
    help="Minqing: closed-loop handling of residents' matters.",
    no_args_is_help=True,
    add_completion=False,
)

LogLevel = Annotated[str, typer.Option(help=f"Uvicorn log level: {', '.join(LOG_LEVELS)}.")]


def _service_name(value: str) -> ServiceName:
    """Validate a service name against SERVICES."""
    for name in SERVICES:
        if name == value:
            return name
    raise typer.BadParameter(f"unknown service {value!r}; expected one of: {', '.join(SERVICES)}")


def _log_level(value: str) -> str:
    """Validate a uvicorn log level."""
    if value.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"unknown log level {value!r}; expected one of: {LOG_LEVELS}")
    return value.lower()


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}.")],
    log_level: LogLevel = "info",
) -> None:
    """Run one service's HTTP API and consumers (configured by MINQING_* variables)."""
    name = _service_name(service)
    level = _log_level(log_level)
    settings = Settings()
    # Our own modules log what matters (dead letters, retries, relay failures): show them.
    logging.basicConfig(
        level="DEBUG" if level == "trace" else level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(f"services.{name}.app")
    api = module.create_app(settings)
    import uvicorn

    uvicorn.run(api, host=settings.host, port=settings.port(name), log_level=level)


def _migrate(database_url: str) -> None:
    """Create the database if needed, then run every service's Alembic migrations."""
    from shared.migrations import upgrade_all

    ensure_database(database_url)
    upgrade_all(database_url)


@app.command()
def migrate() -> None:
    """Create the database if missing and upgrade every service's schema to head."""
    _migrate(Settings().database_url)


db = typer.Typer(
    help="Alembic migrations, one schema per service (database: MINQING_DATABASE_URL).",
    no_args_is_help=True,
)
app.add_typer(db, name="db")


@db.command("upgrade")
def db_upgrade(
    service: Annotated[
        str | None, typer.Argument(help=f"One of: {', '.join(SERVICES)}; default: all.")
    ] = None,
    revision: Annotated[str, typer.Option(help="Target revision (one service only).")] = "head",
) -> None:
    """Create the database if missing and upgrade one service's schema (or all) to a revision."""
    from shared.migrations import upgrade

    if service is None and revision != "head":
        raise typer.BadParameter("--revision needs a service", param_hint="--revision")
    if service is None:
        _migrate(Settings().database_url)
        return
    database_url = Settings().database_url
    ensure_database(database_url)
    upgrade(database_url, _service_name(service), revision)


@db.command("revision")
def db_revision(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}.")],
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
    autogenerate: Annotated[
        bool, typer.Option(help="Draft the upgrade from what the database lacks vs. store.py.")
    ] = False,
    versions_dir: Annotated[
        Path | None, typer.Option(help="Write here instead of the service's migrations/versions.")
    ] = None,
) -> None:
    """Write the service's next revision (<service>_000N) from the shared template."""
    from shared.migrations import revision

    name = _service_name(service)
    path = revision(
        Settings().database_url,
        name,
        message,
        autogenerate=autogenerate,
        versions_dir=versions_dir,
    )
    typer.echo(f"Wrote {path}: review it, then run `minqing db upgrade {name}`.")


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so cleanup code stops the embedded servers."""
    raise SystemExit(128 + signum)


def _nats_url(stack: ExitStack, data_dir: Path, settings: Settings) -> str:
    """MINQING_NATS_URL if set, else an embedded nats-server (port 4222 if free)."""
    if "nats_url" in settings.model_fields_set:
        typer.echo(f"NATS: {settings.nats_url} (from MINQING_NATS_URL)")
        return settings.nats_url
    port = DEFAULT_NATS_PORT if port_is_free(DEFAULT_NATS_PORT) else free_port()
    if port != DEFAULT_NATS_PORT:
        typer.echo(f"NATS: port {DEFAULT_NATS_PORT} is taken, using free port {port}")
    nats = stack.enter_context(EmbeddedNats(data_dir / "nats", port=port))
    stack.callback(typer.echo, "NATS: stopping the embedded nats-server")
    typer.echo(f"NATS: embedded nats-server at {nats.url} (store and log in {nats.store_dir})")
    return nats.url


def _database_url(stack: ExitStack, data_dir: Path, settings: Settings) -> str:
    """MINQING_DATABASE_URL if set, else an embedded PostgreSQL on a Unix socket."""
    if "database_url" in settings.model_fields_set:
        typer.echo("PostgreSQL: from MINQING_DATABASE_URL")
        return settings.database_url
    postgres = stack.enter_context(EmbeddedPostgres(data_dir / "postgres"))
    stack.callback(typer.echo, "PostgreSQL: stopping the embedded server")
    typer.echo(f"PostgreSQL: embedded at {postgres.url()} (data in {postgres.data_dir})")
    return postgres.url()


def _display_host(host: str) -> str:
    """A host to put in a printed URL (wildcard binds are reachable on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _print_urls(settings: Settings) -> None:
    """Print where each service will listen."""
    host = _display_host(settings.host)
    for name in SERVICES:
        base = f"http://{host}:{settings.port(name)}"
        typer.echo(f"{name:>10}: {base}  (API docs: {base}/docs)")


def _run_services(env: dict[str, str], log_level: str) -> int:
    """Run every service as its own OS process under honcho; return honcho's return code."""
    from honcho.manager import Manager  # type: ignore[import-untyped]

    manager = Manager()
    for name in SERVICES:
        command = [sys.executable, "-m", "shared.cli", "serve", name, "--log-level", log_level]
        manager.add_process(name, shlex.join(command), env=env)
    manager.loop()
    return int(manager.returncode or 0)


@app.command()
def up(
    data_dir: Annotated[
        Path,
        typer.Option(envvar="MINQING_DATA_DIR", help="Where embedded NATS/PostgreSQL keep data."),
    ] = Path(".minqing"),
    log_level: LogLevel = "info",
) -> None:
    """Run the whole system on this machine, starting NATS and PostgreSQL unless configured."""
    level = _log_level(log_level)
    # Our own lines (where NATS, PostgreSQL and the services are) appear at once in a pipe too.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    root = data_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    try:
        with ExitStack() as stack:
            env = {
                **os.environ,  # the children's PATH, locale and MINQING_* settings
                "MINQING_NATS_URL": _nats_url(stack, root, settings),
                "MINQING_DATABASE_URL": _database_url(stack, root, settings),
                "PYTHONUNBUFFERED": "1",
            }
            _migrate(env["MINQING_DATABASE_URL"])
            _print_urls(settings)
            code = _run_services(env, level)
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.command(name="asyncapi")
def asyncapi_command() -> None:
    """Print the event contract as an AsyncAPI 3 JSON document."""
    contract = importlib.import_module("shared.contract")
    catalog = importlib.import_module("services.catalog")
    settings = Settings()
    document = contract.asyncapi(settings, catalog.consumers(), catalog.channels(settings))
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def main() -> None:
    """Entry point of the ``minqing`` console script."""
    app(prog_name="minqing")


if __name__ == "__main__":
    main()
