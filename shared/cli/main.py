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
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from minqing.shared.embedded import DataDirInUse, EmbeddedNats, EmbeddedPostgres, hold_lock
from minqing.shared.service.infra import ensure_database, free_port, port_is_free, run_sync
from minqing.shared.service.settings import SERVICES, ServiceName, Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_NATS_PORT = 4222
T = TypeVar("T")
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
    module = importlib.import_module(f"minqing.services.{name}.app")
    api = module.create_app(settings)
    import uvicorn

    uvicorn.run(api, host=settings.host, port=settings.port(name), log_level=level)


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
    from minqing.shared.persistence.migrations import revision

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
        command = [
            sys.executable,
            "-m",
            "minqing.shared.cli",
            "serve",
            name,
            "--log-level",
            log_level,
        ]
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
            # First of all, before a server starts on files another `up` may be using.
            stack.enter_context(hold_lock(root / ".up.lock", root))
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
    except DataDirInUse as exc:
        # Expected, not a fault: the reason in one line, no traceback.
        typer.echo(
            f"minqing up: {exc} (is `minqing up` already running on it?); stop that one, "
            "or pass another --data-dir",
            err=True,
        )
        code = 1
    raise typer.Exit(code)


@app.command(name="import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV or XLSX list."),
    ],
    source: Annotated[str, typer.Option(help="The channel the list comes from.")] = (
        "village_branch"
    ),
    recorded_by: Annotated[
        str | None, typer.Option(help="Who recorded the rows (unless a column says).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Intake's base URL; default: http://MINQING_HOST:MINQING_INTAKE_PORT."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the import job as JSON.")] = False,
) -> None:
    """Import a compiled list (one matter per row) through intake's HTTP API, showing
    progress, then print each row's result. Exit status: 0 all rows accepted, 1 some rows
    rejected, 2 the file refused or intake not reachable."""
    from rich.console import Console

    from minqing.shared.cli.imports import run_import

    settings = Settings()
    base = url or f"http://{_display_host(settings.host)}:{settings.intake_port}"
    code = run_import(
        file,
        url=base,
        source=source,
        recorded_by=recorded_by,
        as_json=as_json,
        out=Console(),
        err=Console(stderr=True),
    )
    raise typer.Exit(code)


open311_key = typer.Typer(
    help="Open311 api keys: each key is printed once; only its SHA-256 is stored. Works on "
    "MINQING_DATABASE_URL, else on the embedded database of `minqing up` in --data-dir.",
    no_args_is_help=True,
)
app.add_typer(open311_key, name="open311-key")

DataDir = Annotated[
    Path,
    typer.Option(envvar="MINQING_DATA_DIR", help="The data dir of `minqing up` (its database)."),
]


OnDatabase = Callable[[Callable[["AsyncEngine"], Coroutine[Any, Any, Any]]], Any]


@contextmanager
def _database(data_dir: Path, settings: Settings | None = None) -> Iterator[OnDatabase]:
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


def _key_command(data_dir: Path, action: Callable[[AsyncEngine], Coroutine[Any, Any, T]]) -> T:
    """Run ``action`` on the key database; a missing schema or a refused operation is a
    message and exit code 1, not a traceback."""
    from sqlalchemy.exc import ProgrammingError

    from minqing.services.intake.open311.keys import KeyProblem

    with _database(data_dir) as run:
        try:
            return cast(T, run(action))
        except KeyProblem as exc:
            typer.echo(str(exc), err=True)
        except ProgrammingError as exc:
            typer.echo(
                f"the database has no Open311 tables ({exc.orig}): run `minqing "
                "migrate` (or `minqing up`) first",
                err=True,
            )
    raise typer.Exit(1)


@open311_key.command("create")
def open311_key_create(
    name: Annotated[str, typer.Argument(help="Who the key is for, e.g. the app's name.")],
    source: Annotated[
        str, typer.Option(help="The channel its requests are reported under (sources.toml).")
    ] = "online",
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Create a key and print it, once."""
    from minqing.services.intake.open311.keys import create_key
    from minqing.shared.contract import reference

    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise typer.BadParameter("a name of 1 to 100 printable characters", param_hint="NAME")
    ref = reference.load(Settings().reference_dir)
    try:
        source = ref.resolve("sources", source)
    except reference.UnknownCode as exc:
        raise typer.BadParameter(str(exc), param_hint="--source") from None
    created = _key_command(data_dir, lambda e: create_key(e, name, source, datetime.now(UTC)))
    typer.echo(f"Created Open311 api key {name!r} (requests reported as {source}).")
    typer.echo("The key is shown only now; only its hash is stored:")
    typer.echo(created.key)


@open311_key.command("list")
def open311_key_list(data_dir: DataDir = Path(".minqing")) -> None:
    """List the keys: name, source, created, revoked (never the keys themselves)."""
    from minqing.services.intake.open311.keys import list_keys

    for key in _key_command(data_dir, list_keys):
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        typer.echo(f"{key.name}\t{key.source}\tcreated {key.created_at:%Y-%m-%d %H:%M}\t{revoked}")


@open311_key.command("revoke")
def open311_key_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Revoke a key: requests with it are refused (403) from now on."""
    from minqing.services.intake.open311.keys import revoke_key

    _key_command(data_dir, lambda e: revoke_key(e, name.strip(), datetime.now(UTC)))
    typer.echo(f"Revoked Open311 api key {name.strip()!r}.")


audit = typer.Typer(
    help="The tamper-evident audit trail: export its head as a checkpoint, verify its hash "
    "chain. Works on MINQING_DATABASE_URL, else on the embedded database of `minqing up`.",
    no_args_is_help=True,
)
app.add_typer(audit, name="audit")


@audit.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = Path(".minqing")) -> None:
    """Print the audit log's head (log_seq, hash, count, time) as JSON: keep it outside the
    database, and verify against it later."""
    from minqing.services.projection.audit_store import checkpoint
    from minqing.shared.domain.clock import system_clock
    from minqing.shared.persistence.db import make_sessions

    with _database(data_dir) as run:
        head = run(lambda engine: checkpoint(make_sessions(engine), system_clock()))
    typer.echo(json.dumps({**head.__dict__, "time": head.time.isoformat()}))


@audit.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A checkpoint printed earlier by `minqing audit checkpoint`."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Recompute the hash chain and name the first entry that was changed, deleted or
    inserted; exit 1 if there is one."""
    from minqing.services.projection.audit import Checkpoint
    from minqing.services.projection.audit_store import verify
    from minqing.shared.persistence.db import make_sessions

    against = None
    if checkpoint is not None:
        try:
            saved = json.loads(checkpoint.read_text(encoding="utf-8"))
            against = Checkpoint(
                log_seq=int(saved["log_seq"]),
                hash=str(saved["hash"]),
                count=int(saved.get("count", 0)),
                time=datetime.fromisoformat(saved["time"])
                if "time" in saved
                else datetime.now(UTC),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise typer.BadParameter(
                f"not a checkpoint: {exc}", param_hint="--checkpoint"
            ) from None
    with _database(data_dir) as run:
        found = run(lambda engine: verify(make_sessions(engine), against))
    problem = found.problem
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": found.ok,
                    "entries": found.entries,
                    "head_log_seq": found.head_log_seq,
                    "head_hash": found.head_hash,
                    "problem": None if problem is None else problem.__dict__,
                }
            )
        )
    elif problem is None:
        held = f"; it holds checkpoint {against.log_seq}" if against else ""
        typer.echo(
            f"audit trail intact: {found.entries} entries, head {found.head_log_seq} "
            f"{found.head_hash}{held}"
        )
    else:
        typer.echo(
            f"audit trail NOT intact: entry {problem.log_seq} {problem.kind}"
            f" (event {problem.event_id}, matter {problem.issue_id}): {problem.detail}",
            err=True,
        )
    if problem is not None:
        raise typer.Exit(1)


projection = typer.Typer(
    help="The projection's read models (list of matters, audit trail).", no_args_is_help=True
)
app.add_typer(projection, name="projection")
REBUILD_STATEMENT_SECONDS = 300.0  # ANALYZE of a large fresh table (the swap's lock waits: 1 s)


@projection.command("rebuild")
def projection_rebuild(
    views: Annotated[
        list[str] | None,
        typer.Argument(
            help="Read models to rebuild (history, issues); default: all.", show_default=False
        ),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per transaction.")] = 500,
    allow_new_chain: Annotated[
        bool,
        typer.Option(
            help="Swap in a rebuilt audit trail even if its hash chain differs from the live "
            "one (checkpoints taken before will not verify)."
        ),
    ] = False,
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Replay the event stream into fresh tables and swap them in atomically, while the
    projection keeps running. Reads MINQING_NATS_URL (default: nats://127.0.0.1:4222, where
    `minqing up` starts NATS when that port is free) and MINQING_DATABASE_URL, else the
    embedded database of `minqing up` in --data-dir. Exit 2 for an unknown view, 1 when it
    fails (nothing swapped)."""
    from rich.console import Console

    from minqing.services.projection.rebuild import UnknownView, select_views
    from minqing.shared.cli.rebuild import rebuild_command

    try:
        chosen = select_views(views or [])
    except UnknownView as exc:
        raise typer.BadParameter(str(exc), param_hint="VIEWS") from None
    settings = Settings()
    timeout = max(settings.database_statement_timeout_seconds, REBUILD_STATEMENT_SECONDS)
    settings = settings.model_copy(update={"database_statement_timeout_seconds": timeout})
    out, err = Console(), Console(stderr=True)
    with _database(data_dir, settings) as run:
        code = run(
            lambda engine: rebuild_command(
                engine, settings, chosen, batch, out, err, allow_new_chain=allow_new_chain
            )
        )
    raise typer.Exit(code)


@app.command(name="asyncapi")
def asyncapi_command() -> None:
    """Print the event contract as an AsyncAPI 3 JSON document."""
    contract = importlib.import_module("minqing.shared.contract.asyncapi")
    catalog = importlib.import_module("minqing.services.catalog")
    settings = Settings()
    document = contract.asyncapi(settings, catalog.consumers(), catalog.channels(settings))
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def main() -> None:
    """Entry point of the ``minqing`` console script."""
    app(prog_name="minqing")


if __name__ == "__main__":
    main()
