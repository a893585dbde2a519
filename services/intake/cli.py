"""Intake's commands: import a compiled list through intake's HTTP API, manage the api keys
of Open311 apps, erase a reporter's or a resident supervisor's name and phone, and prune
staff's photos by the retention rule."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from minqing.shared.cli.main import DataDir, database, display_host
from minqing.shared.service.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Add intake's commands to the ``minqing`` command."""
    app.command(name="import")(import_command)
    app.add_typer(open311_key, name="open311-key")
    app.add_typer(reporter, name="reporter")
    app.add_typer(resident_supervisor, name="resident-supervisor")
    app.add_typer(photos, name="photos")


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
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MINQING_TOKEN",
            help="A bearer token of a reporter (`minqing token create`); env MINQING_TOKEN.",
        ),
    ] = None,
) -> None:
    """Import a compiled list (one matter per row) through intake's HTTP API, showing
    progress, then print each row's result. Exit status: 0 all rows accepted, 1 some rows
    rejected, 2 the file refused or intake not reachable."""
    from rich.console import Console

    from minqing.services.intake.channels.lists.client import run_import

    settings = Settings()
    base = url or f"http://{display_host(settings.host)}:{settings.intake_port}"
    code = run_import(
        file,
        url=base,
        token=token,
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


def _key_command(data_dir: Path, action: Callable[[AsyncEngine], Coroutine[Any, Any, T]]) -> T:
    """Run ``action`` on the key database; a missing schema or a refused operation is a
    message and exit code 1, not a traceback."""
    from sqlalchemy.exc import ProgrammingError

    from minqing.services.intake.channels.open311.keys import KeyProblem

    with database(data_dir) as run:
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
    from minqing.services.intake.channels.open311.keys import create_key
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
    from minqing.services.intake.channels.open311.keys import list_keys

    for key in _key_command(data_dir, list_keys):
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        typer.echo(f"{key.name}\t{key.source}\tcreated {key.created_at:%Y-%m-%d %H:%M}\t{revoked}")


@open311_key.command("revoke")
def open311_key_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Revoke a key: requests with it are refused (403) from now on."""
    from minqing.services.intake.channels.open311.keys import revoke_key

    _key_command(data_dir, lambda e: revoke_key(e, name.strip(), datetime.now(UTC)))
    typer.echo(f"Revoked Open311 api key {name.strip()!r}.")


reporter = typer.Typer(
    help="Reporters' personal information (kept only in intake).", no_args_is_help=True
)


def cli_actor() -> str:
    """Who erases from the command line, as the events' actor: the command runs on the
    database directly, with no authenticated principal, so a system principal named after
    the operating-system user (``system:cli-<user>``, the user's name reduced to a
    principal name's characters)."""
    user = re.sub(r"[^a-z0-9._-]+", "-", getpass.getuser().lower()).strip("-._") or "unknown"
    return f"system:cli-{user}"


def _erase(
    data_dir: Path,
    reason: str,
    erase: Callable[[Any, str, str], Coroutine[Any, Any, T]],
    missing: type[Exception],
) -> T:
    """Run one erasure on intake's database as ``cli_actor()``, with ``reason``; exits 2
    without a reason and 1 when nothing is kept under the reference (``missing``)."""
    from minqing.services.intake.store import SqlContacts, plumbing
    from minqing.shared.domain.clock import system_clock
    from minqing.shared.messaging.outbox import Outbox
    from minqing.shared.persistence.db import make_sessions
    from minqing.shared.persistence.uow import sql_units_of_work

    settings = Settings()
    if not reason.strip():
        typer.echo("--reason must say why", err=True)
        raise typer.Exit(2)

    async def run_erase(engine: AsyncEngine) -> T:
        outbox = Outbox(plumbing.outbox, settings.subject_prefix)
        units = sql_units_of_work(
            make_sessions(engine), SqlContacts, outbox, service="intake", clock=system_clock
        )
        return await erase(units, reason.strip(), cli_actor())

    with database(data_dir, settings) as run:
        try:
            return cast(T, run(run_erase))
        except missing as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None


@reporter.command("erase")
def reporter_erase(
    reporter_ref: Annotated[str, typer.Argument(metavar="REF", help="The reporter_ref (rpt_...).")],
    reason: Annotated[str, typer.Option(help="Why: recorded on each of the reporter's matters.")],
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Erase a reporter's name and phone: replies still waiting are dropped, and
    issue.reporter_erased is recorded on every matter they reported (relayed to NATS by
    intake when it runs)."""
    from minqing.services.intake.personal import NoSuchReporter, erase_reporter

    async def erase(units: Any, why: str, actor: str) -> list[str]:
        return await erase_reporter(units, reporter_ref, reason=why, actor=actor)

    issues = _erase(data_dir, reason, erase, NoSuchReporter)
    typer.echo(f"erased {reporter_ref}: recorded on {len(issues)} matter(s): {', '.join(issues)}")


resident_supervisor = typer.Typer(
    help="Invited resident supervisors' personal information (kept only in intake).",
    no_args_is_help=True,
)


@resident_supervisor.command("erase")
def resident_supervisor_erase(
    supervisor_ref: Annotated[
        str, typer.Argument(metavar="REF", help="The supervisor_ref (sup_...).")
    ],
    reason: Annotated[str, typer.Option(help="Why: recorded on the supervised matter.")],
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Erase an invited resident supervisor's name and phone (their reference and masked
    phone stay): issue.supervisor_erased is recorded on the matter they supervise (relayed
    to NATS by intake when it runs)."""
    from minqing.services.intake.personal import NoSuchSupervisor, erase_supervisor

    async def erase(units: Any, why: str, actor: str) -> str:
        return await erase_supervisor(units, supervisor_ref, reason=why, actor=actor)

    issue_id = _erase(data_dir, reason, erase, NoSuchSupervisor)
    typer.echo(f"erased {supervisor_ref}: recorded on matter {issue_id}")


photos = typer.Typer(
    help="Staff's photos (intake's private store). Works on MINQING_DATABASE_URL, else on "
    "the embedded database of `minqing up` in --data-dir.",
    no_args_is_help=True,
)


@photos.command("prune")
def photos_prune(data_dir: DataDir = Path(".minqing")) -> None:
    """Apply the retention rule now (intake also does every
    MINQING_PHOTO_PRUNE_INTERVAL_SECONDS): delete the bytes of photos never attached to a
    matter after MINQING_PHOTO_ORPHAN_HOURS, and of the others MINQING_PHOTO_RETENTION_DAYS
    after their upload. Their ids and SHA-256 stay, as the audit trail names them."""
    from minqing.services.intake.photos.prune import prune_on
    from minqing.services.intake.photos.wiring import said

    settings = Settings()
    with database(data_dir, settings) as run:
        pruned = run(lambda engine: prune_on(engine, settings))
    typer.echo(said(pruned))
