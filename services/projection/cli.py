"""The projection's commands: the audit trail's checkpoint and verification, and rebuilding
the read models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from minqing.shared.cli.main import DataDir, database
from minqing.shared.service.settings import Settings


def register(app: typer.Typer) -> None:
    """Add the projection's commands to the ``minqing`` command."""
    app.add_typer(audit, name="audit")
    app.add_typer(projection, name="projection")


audit = typer.Typer(
    help="The tamper-evident audit trail: export its head as a checkpoint, verify its hash "
    "chain. Works on MINQING_DATABASE_URL, else on the embedded database of `minqing up`.",
    no_args_is_help=True,
)


@audit.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = Path(".minqing")) -> None:
    """Print the audit log's head (log_seq, hash, count, time) as JSON: keep it outside the
    database, and verify against it later."""
    from minqing.services.projection.views.history.verify import checkpoint
    from minqing.shared.domain.clock import system_clock
    from minqing.shared.persistence.db import make_sessions

    with database(data_dir) as run:
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
    from minqing.services.projection.views.history.seal import Checkpoint
    from minqing.services.projection.views.history.verify import verify
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
    with database(data_dir) as run:
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
    `minqing up` starts NATS when that port is free) with MINQING_NATS_CREDENTIALS (default:
    the operator's key of `minqing up` in --data-dir, if there is one) and
    MINQING_DATABASE_URL, else the embedded database of `minqing up` in --data-dir. Exit 2
    for an unknown view, 1 when it fails (nothing swapped)."""
    from rich.console import Console

    from minqing.services.projection.rebuild import UnknownView, select_views
    from minqing.services.projection.rebuild_cli import rebuild_command

    try:
        chosen = select_views(views or [])
    except UnknownView as exc:
        raise typer.BadParameter(str(exc), param_hint="VIEWS") from None
    settings = Settings()
    timeout = max(settings.database_statement_timeout_seconds, REBUILD_STATEMENT_SECONDS)
    settings = settings.model_copy(update={"database_statement_timeout_seconds": timeout})
    if settings.nats_credentials is None:
        from minqing.shared.embedded.nats import admin_credentials

        admin = admin_credentials(data_dir.resolve() / "nats")
        settings = settings.model_copy(update={"nats_credentials": admin})
    out, err = Console(), Console(stderr=True)
    with database(data_dir, settings) as run:
        code = run(
            lambda engine: rebuild_command(
                engine, settings, chosen, batch, out, err, allow_new_chain=allow_new_chain
            )
        )
    raise typer.Exit(code)
