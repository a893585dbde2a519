"""``minqing backup DIR`` and ``minqing restore DIR``: thin commands over ``backup.py``
and ``restore.py``, on MINQING_NATS_URL and MINQING_DATABASE_URL, else on the embedded
servers of ``minqing up`` in ``--data-dir``."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from minqing.shared.cli.main import DataDir
from minqing.shared.service.infra import ensure_database, free_port, run_sync
from minqing.shared.service.settings import Settings

if TYPE_CHECKING:
    from nats.aio.client import Client

NATS_CONNECT_SECONDS = 5.0
STATEMENT_SECONDS = 300.0  # counting a database's rows, marking a large outbox
PgBin = Annotated[
    Path | None,
    typer.Option(help="A directory with pg_dump and pg_restore; default: the newest that fits."),
]


def _timed() -> Callable[[str], None]:
    """Print a line with the seconds since the command began."""
    started = time.monotonic()
    return lambda line: typer.echo(f"[{time.monotonic() - started:6.1f} s] {line}")


def register(app: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to the ``minqing`` command."""
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)


def backup_command(
    directory: Annotated[Path, typer.Argument(help="A new directory for the backup.")],
    pg_bin: PgBin = None,
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Back up the event streams (JetStream snapshots, with their consumers) and the
    database (pg_dump) while the system runs, into a new directory with a manifest."""
    from minqing.shared.backup.backup import take

    settings = _with_admin_key(Settings(), data_dir)
    with ExitStack() as stack:
        url = _database_url(stack, data_dir, settings, start=False)

        async def run(nc: Client, engine: Any) -> list[str]:
            manifest = await take(
                nc, engine, url, settings, directory.resolve(), pg_bin=pg_bin, say=_timed()
            )
            last = ", ".join(f"{s.name} {s.last_seq}+{s.tail_messages}" for s in manifest.streams)
            return [f"backup complete: {directory} (streams at {last})"]

        _run(settings, url, run, "backup failed")


def restore_command(
    directory: Annotated[Path, typer.Argument(help="A backup made by `minqing backup`.")],
    replace: Annotated[
        bool,
        typer.Option(help="Delete the streams and schemas the servers hold first."),
    ] = False,
    streams_only: Annotated[
        bool,
        typer.Option(
            help="Restore the streams only, against the database as it is (NATS was lost, "
            "PostgreSQL was not); events it records as sent go back into the streams."
        ),
    ] = False,
    pg_bin: PgBin = None,
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Restore a backup into empty servers (stop the services first). Without
    MINQING_NATS_URL and MINQING_DATABASE_URL it restores into the embedded servers of a
    new `minqing up` data dir (--data-dir), started for the command."""
    from minqing.shared.backup.restore import restore

    settings = Settings()
    with ExitStack() as stack:
        settings = _nats_for_restore(stack, data_dir, settings)
        url = _database_url(stack, data_dir, settings, start=True)
        ensure_database(url)

        async def run(nc: Client, engine: Any) -> list[str]:
            done = await restore(
                nc,
                engine,
                url,
                settings,
                directory.resolve(),
                replace=replace,
                streams_only=streams_only,
                pg_bin=pg_bin,
                say=_timed(),
            )
            return [*done.lines(), "now start the services, then run `minqing audit verify`"]

        _run(settings, url, run, "restore failed")


def _with_admin_key(settings: Settings, data_dir: Path) -> Settings:
    """The operator's key of `minqing up` in ``data_dir`` when no credentials are set."""
    if settings.nats_credentials is not None:
        return settings
    from minqing.shared.embedded.nats import admin_credentials

    admin = admin_credentials(data_dir.resolve() / "nats")
    return settings.model_copy(update={"nats_credentials": admin})


def _database_url(stack: ExitStack, data_dir: Path, settings: Settings, *, start: bool) -> str:
    """MINQING_DATABASE_URL, else the embedded database in ``data_dir`` (the running one,
    or started for the command; created there for a restore when ``start``)."""
    if "database_url" in settings.model_fields_set:
        return settings.database_url
    from minqing.shared.embedded import EmbeddedPostgres
    from minqing.shared.embedded.postgres import embedded_database

    where = data_dir.resolve() / "postgres"
    if start and not (where / "PG_VERSION").is_file():
        return str(stack.enter_context(EmbeddedPostgres(where)).url())
    try:
        return stack.enter_context(embedded_database(where))
    except (FileNotFoundError, RuntimeError) as exc:
        typer.echo(f"{exc}: pass --data-dir, or set MINQING_DATABASE_URL", err=True)
        raise typer.Exit(1) from None


def _nats_for_restore(stack: ExitStack, data_dir: Path, settings: Settings) -> Settings:
    """MINQING_NATS_URL, else an embedded nats-server on ``data_dir`` for the command,
    with the users `minqing up` gives it (refused while `minqing up` runs there)."""
    if "nats_url" in settings.model_fields_set:
        return _with_admin_key(settings, data_dir)
    from minqing.shared.cli import main
    from minqing.shared.embedded import DataDirInUse, EmbeddedNats, hold_lock
    from minqing.shared.messaging.access import ADMIN

    root = data_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        stack.enter_context(hold_lock(root / ".up.lock", root))
    except DataDirInUse as exc:
        typer.echo(f"minqing restore: {exc}; stop `minqing up` first", err=True)
        raise typer.Exit(1) from None
    if main.nats_users is None:
        raise RuntimeError("the NATS users are not registered")
    nats = EmbeddedNats(root / "nats", port=free_port(), users=main.nats_users(settings))
    stack.enter_context(nats)
    typer.echo(f"NATS: embedded nats-server at {nats.url} for the restore")
    return settings.model_copy(
        update={"nats_url": nats.url, "nats_credentials": nats.credentials_of("admin", ADMIN)}
    )


def _run(settings: Settings, url: str, action: Any, failed: str) -> None:
    """Connect to NATS and the database, run ``action(nc, engine)``, print its lines;
    exit 1 with one line when it fails."""
    import nats
    from nats.errors import Error as NatsError
    from sqlalchemy.exc import DBAPIError

    from minqing.shared.backup.backup import BackupExists
    from minqing.shared.backup.manifest import BackupDamaged
    from minqing.shared.backup.postgres import ToolFailed, ToolMissing
    from minqing.shared.backup.restore import NotEmpty
    from minqing.shared.backup.snapshot import SnapshotError
    from minqing.shared.messaging.access import ADMIN, connect_options, service_inbox
    from minqing.shared.persistence.db import make_engine

    expected = (
        BackupExists,
        BackupDamaged,
        NotEmpty,
        SnapshotError,
        ToolFailed,
        ToolMissing,
        DBAPIError,
        NatsError,
        OSError,
        TimeoutError,
    )

    timeout = max(settings.database_statement_timeout_seconds, STATEMENT_SECONDS)
    settings = settings.model_copy(update={"database_statement_timeout_seconds": timeout})

    async def once() -> list[str]:
        async def quiet(_: Exception) -> None:
            """Connection errors are reported once, below."""

        nc = await nats.connect(
            settings.nats_servers,
            connect_timeout=NATS_CONNECT_SECONDS,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=quiet,
            **connect_options(settings.nats_credentials, service_inbox(ADMIN)),
        )
        engine = make_engine(url, settings)
        try:
            lines: list[str] = await action(nc, engine)
            return lines
        finally:
            await engine.dispose()
            await nc.close()

    try:
        lines = run_sync(once)
    except expected as exc:
        text = str(getattr(exc, "orig", None) or exc) or repr(exc)
        typer.echo(f"{failed}: {text.splitlines()[0] if text else type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    for line in lines:
        typer.echo(line)
