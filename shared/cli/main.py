"""The commands every deployment has: run migrations (``migrate``, ``db``) and bring the
whole system up (``up``), with what the services' own commands share (the data dir, a
database to work on). The ``minqing`` command itself is assembled in ``services/cli.py``,
where each service registers its commands."""

from __future__ import annotations

import io
import os
import shlex
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from minqing.shared.embedded import DataDirInUse, EmbeddedNats, EmbeddedPostgres, hold_lock
from minqing.shared.embedded.caddy import EmbeddedCaddy, write_caddyfile
from minqing.shared.service.infra import ensure_database, free_port, port_is_free, run_sync
from minqing.shared.service.settings import SERVICES, ServiceName, Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from minqing.shared.messaging.access import User

DEFAULT_NATS_PORT = 4222
T = TypeVar("T")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# The NATS users `up` gives its embedded server (each service's, each department system's,
# the operator's): set by services/natsconfig.py, which knows the services.
nats_users: Callable[[Settings], Sequence[User]] | None = None


app = typer.Typer(
    help="Minqing: closed-loop handling of residents' matters.",
    no_args_is_help=True,
    add_completion=False,
)

LogLevel = Annotated[str, typer.Option(help=f"Uvicorn log level: {', '.join(LOG_LEVELS)}.")]


def service_name(value: str) -> ServiceName:
    """Validate a service name against SERVICES."""
    for name in SERVICES:
        if name == value:
            return name
    raise typer.BadParameter(f"unknown service {value!r}; expected one of: {', '.join(SERVICES)}")


def checked_log_level(value: str) -> str:
    """Validate a uvicorn log level."""
    if value.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"unknown log level {value!r}; expected one of: {LOG_LEVELS}")
    return value.lower()


def _migrate(database_url: str) -> None:
    """Create the database if needed, then run every service's Alembic migrations."""
    from minqing.shared.persistence.migrations import upgrade_all

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
    from minqing.shared.persistence.migrations import upgrade

    if service is None and revision != "head":
        raise typer.BadParameter("--revision needs a service", param_hint="--revision")
    if service is None:
        _migrate(Settings().database_url)
        return
    database_url = Settings().database_url
    ensure_database(database_url)
    upgrade(database_url, service_name(service), revision)


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
    from minqing.shared.persistence.migrations import revision

    name = service_name(service)
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


def _nats_url(
    stack: ExitStack, data_dir: Path, settings: Settings, own: dict[str, dict[str, str]]
) -> str:
    """MINQING_NATS_URL if set, else an embedded nats-server (port 4222 if free) that only
    its users may use; ``own`` gets each service's credentials for it."""
    if "nats_url" in settings.model_fields_set:
        typer.echo(f"NATS: {settings.nats_url} (from MINQING_NATS_URL)")
        return settings.nats_url
    port = DEFAULT_NATS_PORT if port_is_free(DEFAULT_NATS_PORT) else free_port()
    if port != DEFAULT_NATS_PORT:
        typer.echo(f"NATS: port {DEFAULT_NATS_PORT} is taken, using free port {port}")
    if nats_users is None:
        raise RuntimeError("the NATS users are not registered: run `minqing up`")
    nats = EmbeddedNats(data_dir / "nats", port=port, users=nats_users(settings))
    stack.enter_context(nats)
    stack.callback(typer.echo, "NATS: stopping the embedded nats-server")
    typer.echo(f"NATS: embedded nats-server at {nats.url} (store and log in {nats.store_dir})")
    typer.echo(f"NATS: only its users may connect (NKey seeds in {nats.store_dir}/credentials)")
    for name in SERVICES:
        seed = nats.credentials_of("service", name)
        own[name] = {"MINQING_NATS_CREDENTIALS": str(seed)}
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


def display_host(host: str) -> str:
    """A host to put in a printed URL (wildcard binds are reachable on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _first_operator(database_url: str, settings: Settings) -> None:
    """On an empty registry of people, an operator with a random password, printed once."""
    from datetime import UTC, datetime

    from minqing.shared.identity.admin import first_operator
    from minqing.shared.persistence.db import make_engine

    async def once() -> None:
        engine = make_engine(database_url, settings)
        try:
            issued = await first_operator(engine, datetime.now(UTC))
        finally:
            await engine.dispose()
        if issued is not None:
            typer.echo(
                f"First start: log in as {issued.principal.name!r} with the password "
                f"{issued.secret} (shown once). Add people with `minqing user add NAME "
                "--unit UNIT --role ROLE` and systems with `minqing token create`."
            )

    run_sync(once)


def _front_door(stack: ExitStack, data_dir: Path, settings: Settings, env: dict[str, str]) -> str:
    """The front door: an embedded Caddy on MINQING_FRONT_PORT (8080, or a free port if that
    is taken and was not asked for) in front of the services; its URL, the one people use."""
    port = settings.front_port
    if not port_is_free(port, settings.front_host):
        if "front_port" in settings.model_fields_set:
            typer.echo(f"minqing up: MINQING_FRONT_PORT {port} is taken", err=True)
            raise typer.Exit(1)
        port = free_port(settings.front_host)
        typer.echo(f"Front door: port {settings.front_port} is taken, using free port {port}")
    listen = f"{settings.front_host}:{port}"
    config = data_dir / "caddy" / "Caddyfile"
    write_caddyfile(config, listen, env)
    caddy = stack.enter_context(EmbeddedCaddy(data_dir / "caddy", config, listen))
    stack.callback(typer.echo, "Front door: stopping caddy")
    scheme = "https" if settings.tls_cert_file else "http"
    url = f"{scheme}://{display_host(settings.front_host)}:{port}/"
    typer.echo(f"Front door: caddy at {url} (Caddyfile and log in {caddy.data_dir})")
    typer.echo(f"Open {url} : the desk, and every API under the same address.")
    return url


def _run_services(env: dict[str, str], log_level: str, own: Mapping[str, Mapping[str, str]]) -> int:
    """Run every service as its own OS process under honcho (with ``env`` and its ``own``
    variables); return honcho's return code."""
    from honcho.manager import Manager  # type: ignore[import-untyped]

    manager = Manager()
    for name in SERVICES:
        command = [
            sys.executable,
            "-m",
            "minqing",
            "serve",
            name,
            "--log-level",
            log_level,
        ]
        manager.add_process(name, shlex.join(command), env={**env, **own.get(name, {})})
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
    level = checked_log_level(log_level)
    # Our own lines (where NATS, PostgreSQL and the services are) appear at once in a pipe too.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    root = data_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    try:
        with ExitStack() as stack:
            # First of all, before a server starts on files another `up` may be using.
            stack.enter_context(hold_lock(root / ".up.lock", root))
            own: dict[str, dict[str, str]] = {}  # each service's NATS credentials
            env = {
                **os.environ,  # the children's PATH, locale and MINQING_* settings
                "MINQING_NATS_URL": _nats_url(stack, root, settings, own),
                "MINQING_DATABASE_URL": _database_url(stack, root, settings),
                "PYTHONUNBUFFERED": "1",
            }
            _migrate(env["MINQING_DATABASE_URL"])
            _first_operator(env["MINQING_DATABASE_URL"], settings)
            url = _front_door(stack, root, settings, env)
            # The replies' feedback links open the residents' page behind the front door.
            env.setdefault("MINQING_FEEDBACK_BASE_URL", url.rstrip("/"))
            code = _run_services(env, level, own)
    except KeyboardInterrupt:
        code = 130
    except DataDirInUse as exc:
        # Expected, not a fault: the reason in one line, no traceback.
        typer.echo(
            f"minqing up: {exc} (is `minqing up` already running on it?); stop that one, "
            "or pass another --data-dir",
            err=True,
        )
        code = 1
    raise typer.Exit(code)


DataDir = Annotated[
    Path,
    typer.Option(envvar="MINQING_DATA_DIR", help="The data dir of `minqing up` (its database)."),
]


OnDatabase = Callable[[Callable[["AsyncEngine"], Coroutine[Any, Any, Any]]], Any]


@contextmanager
def database(data_dir: Path, settings: Settings | None = None) -> Iterator[OnDatabase]:
    """MINQING_DATABASE_URL if set, else the embedded database `minqing up` keeps in
    ``data_dir``: the running one, or started for this command. Yields ``run(action)``,
    which runs ``action(engine)`` and disposes of the engine on one event loop."""
    from minqing.shared.embedded.postgres import embedded_database
    from minqing.shared.persistence.db import make_engine

    settings = settings or Settings()
    with ExitStack() as stack:
        if "database_url" in settings.model_fields_set:
            url = settings.database_url
        else:
            try:
                url = stack.enter_context(embedded_database(data_dir / "postgres"))
            except (FileNotFoundError, RuntimeError) as exc:
                typer.echo(
                    f"{exc}: run `minqing up` in this folder first (or pass --data-dir), "
                    "or set MINQING_DATABASE_URL",
                    err=True,
                )
                raise typer.Exit(1) from None

        def run(action: Callable[[AsyncEngine], Coroutine[Any, Any, Any]]) -> Any:
            async def once() -> Any:
                engine = make_engine(url, settings)
                try:
                    return await action(engine)
                finally:
                    await engine.dispose()

            return run_sync(once)

        yield run
