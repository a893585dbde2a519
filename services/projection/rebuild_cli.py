"""`minqing projection rebuild`: progress on the terminal (plain lines in a pipe), a summary,
and one clear line instead of a traceback when NATS or PostgreSQL cannot be reached."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from minqing.shared.service.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from minqing.services.projection.rebuild import Summary

PLAIN_EVERY_SECONDS = 1.0
NATS_CONNECT_SECONDS = 5.0


class PlainProgress:
    """Progress as lines, at most one a second (and the last one), for pipes and logs."""

    def __init__(self, out: Console) -> None:
        self._out = out
        self._total = 0
        self._done = 0
        self._printed = 0.0

    def total(self, events: int) -> None:
        self._total = events

    def advance(self, events: int) -> None:
        self._done += events
        now = time.monotonic()
        if now - self._printed >= PLAIN_EVERY_SECONDS or self._done >= self._total:
            self._printed = now
            share = f" ({100 * self._done // self._total}%)" if self._total else ""
            self._out.print(f"replayed {self._done} of {self._total} events{share}")

    def note(self, text: str) -> None:
        self._out.print(text)


class BarProgress:
    """A rich progress bar on a terminal."""

    def __init__(self, bar: Bar) -> None:
        self._bar = bar
        self._task = bar.add_task("replaying", total=None)

    def total(self, events: int) -> None:
        self._bar.update(self._task, total=events)

    def advance(self, events: int) -> None:
        self._bar.advance(self._task, events)

    def note(self, text: str) -> None:
        self._bar.update(self._task, description=text)
        self._bar.console.print(text)


def summary_lines(summary: Summary) -> list[str]:
    """The final report: events replayed, each view's outcome, the time it took."""
    extra = [f"{summary.earlier} from the audit trail"] if summary.earlier else []
    extra.append(f"{summary.tail} during the swap")
    if summary.unreadable:
        extra.append(f"{summary.unreadable} unreadable, skipped")
    lines = [
        f"rebuilt {', '.join(summary.views)}: {summary.events} events replayed in "
        f"{summary.seconds:.1f} s ({'; '.join(extra)})"
    ]
    for name, c in summary.outcomes.items():
        lines.append(
            f"  {name}: {c.applied} applied, {c.duplicates} duplicates skipped, "
            f"{c.waiting} waiting for a newer consumer, {c.dead} refused"
        )
    if summary.chain is not None:
        lines.append(f"  audit chain: {summary.chain}")
    return lines


async def rebuild_command(
    engine: AsyncEngine,
    settings: Settings,
    views: Sequence[ModuleType],
    batch: int,
    out: Console,
    err: Console,
    *,
    allow_new_chain: bool = False,
) -> int:
    """Connect to NATS, rebuild, print the summary; 0 on success, 1 with one line else."""
    import nats
    from nats.errors import Error as NatsError
    from sqlalchemy.exc import DBAPIError, ProgrammingError

    from minqing.services.projection.rebuild import RebuildError, rebuild
    from minqing.shared.messaging.access import ADMIN, connect_options, service_inbox

    async def quiet(_: Exception) -> None:
        """Connection errors are reported once, below."""

    try:
        nc = await nats.connect(
            settings.nats_servers,
            connect_timeout=NATS_CONNECT_SECONDS,
            allow_reconnect=False,
            max_reconnect_attempts=1,  # two quick tries (0 retries forever in nats-py 2.16)
            reconnect_time_wait=0.2,
            error_cb=quiet,
            **connect_options(settings.nats_credentials, service_inbox(ADMIN)),
        )
    except (OSError, TimeoutError, NatsError) as exc:
        err.print(f"cannot reach NATS at {settings.nats_url}: {exc!r}", markup=False)
        return 1
    try:
        js = nc.jetstream()
        if out.is_terminal:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
            with Bar(*columns, TimeElapsedColumn(), console=out) as bar:
                found = await rebuild(
                    engine,
                    js,
                    settings,
                    views,
                    batch=batch,
                    progress=BarProgress(bar),
                    allow_new_chain=allow_new_chain,
                )
        else:
            progress = PlainProgress(out)
            found = await rebuild(
                engine,
                js,
                settings,
                views,
                batch=batch,
                progress=progress,
                allow_new_chain=allow_new_chain,
            )
    except RebuildError as exc:
        err.print(f"rebuild failed, nothing was swapped: {exc}", markup=False)
        return 1
    except ProgrammingError as exc:
        err.print(
            f"rebuild failed: {_one_line(exc)} (has `minqing migrate` run?)",
            markup=False,
        )
        return 1
    except (OSError, DBAPIError, NatsError, TimeoutError) as exc:
        err.print(f"rebuild failed: {_one_line(exc)}", markup=False)
        return 1
    finally:
        await nc.close()
    for line in summary_lines(found):
        out.print(line, markup=False, highlight=False)
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc) or repr(exc)
    return text.splitlines()[0] if text else type(exc).__name__
