"""Followup's commands: fill cases stored before followup kept what a look-back shows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from minqing.shared.cli.main import DataDir, database
from minqing.shared.service.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

NATS_CONNECT_SECONDS = 5.0


def register(app: typer.Typer) -> None:
    """Add followup's commands to the ``minqing`` command."""
    app.add_typer(followup, name="followup")


followup = typer.Typer(help="Followup's maintenance.", no_args_is_help=True)


@followup.command("backfill-cases")
def backfill_command(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per fetch.")] = 500,
    data_dir: DataDir = Path(".minqing"),
) -> None:
    """Fill the title, village and address (from issue.reported) and the resolution's
    summary (from issue.resolved) into followup's cases that lack them: matters stored
    before migration followup_0007, whose look-backs list without them (and not at all for
    line staff with villages). Reads the event stream from its start with an ephemeral
    consumer; writes only empty fields, so it is safe while followup runs and to repeat.
    Reads MINQING_NATS_URL with MINQING_NATS_CREDENTIALS (default: the operator's key of
    `minqing up` in --data-dir, if there is one) and MINQING_DATABASE_URL, else the embedded
    database of `minqing up`. Exit 1 when NATS cannot be reached or some cases stay empty
    (their events are no longer on the stream)."""
    settings = Settings()
    if settings.nats_credentials is None:
        from minqing.shared.embedded.nats import admin_credentials

        admin = admin_credentials(data_dir.resolve() / "nats")
        settings = settings.model_copy(update={"nats_credentials": admin})
    with database(data_dir, settings) as run:
        code = run(lambda engine: _backfill(engine, settings, batch))
    raise typer.Exit(code)


async def _backfill(engine: AsyncEngine, settings: Settings, batch: int) -> int:
    import nats
    from nats.errors import Error as NatsError

    from minqing.services.followup.backfill import backfill_cases
    from minqing.shared.messaging.access import ADMIN, connect_options, service_inbox

    async def quiet(_: Exception) -> None:
        """Connection errors are reported once, below."""

    try:
        nc = await nats.connect(
            settings.nats_servers,
            connect_timeout=NATS_CONNECT_SECONDS,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            error_cb=quiet,
            **connect_options(settings.nats_credentials, service_inbox(ADMIN)),
        )
    except (OSError, TimeoutError, NatsError) as exc:
        typer.echo(f"cannot reach NATS at {settings.nats_url}: {exc!r}", err=True)
        return 1
    try:
        done = await backfill_cases(engine, nc.jetstream(), settings, batch=batch)
    finally:
        await nc.close()
    typer.echo(
        f"{done.missing} cases lacked a title, village or summary; {done.filled} filled from "
        f"{done.read} events of the stream; {len(done.left)} still lacking"
    )
    for issue_id in done.left:
        typer.echo(f"  no issue.reported/issue.resolved on the stream for {issue_id}", err=True)
    return 1 if done.left else 0
