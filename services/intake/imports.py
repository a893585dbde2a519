"""Compiled lists as import jobs: the rows are stored at upload, then accepted in batches in
the background through the same use case as every channel; each row's result is stored in
the transaction that accepts it, so a job survives a restart and a re-import of the same
rows creates nothing new (each row carries its ``external_ref`` or a content-derived
idempotency key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from sqlalchemy.exc import DBAPIError

from minqing.services.intake.domain import ReportIssue
from minqing.services.intake.handlers import (
    REPORT_KEYS,
    Accepted,
    Policy,
    Reports,
    accept_report,
    report_issue,
)
from minqing.shared.messaging.faults import OutageLog, is_transient
from minqing.shared.persistence.races import first_wins
from minqing.shared.persistence.uow import UnitOfWork, UowFactory

log = logging.getLogger(__name__)
RowStatus = Literal["pending", "accepted", "rejected"]


@dataclass(frozen=True)
class RowError:
    """Why a row was refused: the field (and the column header it came from)."""

    field: str
    column: str | None
    reason: str


@dataclass(frozen=True)
class ListRow:
    """One row as the edge validated it: a command to accept, or why it is refused."""

    number: int
    command: ReportIssue | None
    errors: tuple[RowError, ...] = ()
    idempotency_key: str | None = None
    request_hash: str | None = None

    def result(self) -> dict[str, Any] | None:
        """A refused row's result, known at once; ``None`` while the row waits."""
        if self.command is not None:
            return None
        return {
            "row": self.number,
            "status": "rejected",
            "errors": [asdict(e) for e in self.errors],
        }


@dataclass(frozen=True)
class ImportJob:
    """What an upload was: the file, how its header was read, which rows were passed over."""

    import_id: str
    source: str
    filename: str | None
    format: str
    header_row: int
    columns: dict[str, str]
    ignored_columns: list[str]
    blank_rows: list[int]
    total_rows: int
    created_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class PendingRow:
    import_id: str
    number: int
    command: ReportIssue
    idempotency_key: str | None
    request_hash: str | None


@dataclass(frozen=True)
class ImportProgress:
    """A job and how far it is: counts by row status, and the rows' results once done."""

    job: ImportJob
    counts: dict[str, int]
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.job.finished_at is not None

    @property
    def processed(self) -> int:
        return self.counts.get("accepted", 0) + self.counts.get("rejected", 0)


class Imports(Protocol):
    """Import jobs and their rows, in intake's tables."""

    async def add_import(self, job: ImportJob, at: datetime, finished: bool) -> None: ...

    async def add_rows(self, import_id: str, rows: Sequence[ListRow]) -> None: ...

    async def pending(self, limit: int) -> list[PendingRow]:
        """The next rows waiting, oldest import first, locked (others skip them)."""
        ...

    async def pending_row(self, import_id: str, number: int) -> PendingRow | None:
        """One row if it still waits, locked."""
        ...

    async def set_result(self, import_id: str, number: int, result: dict[str, Any]) -> None: ...

    async def finish_if_done(self, import_id: str, at: datetime) -> None:
        """Mark the job finished if no row waits any more."""
        ...

    async def progress(self, import_id: str, with_results: bool) -> ImportProgress | None: ...

    async def prune(self, finished_before: datetime) -> int:
        """Forget jobs finished before then, with their rows; how many jobs went."""
        ...


class ImportStore(Reports, Imports, Protocol):
    """What the import use cases work on: reports (to accept rows) and the jobs."""


async def start_import(
    units: UowFactory[ImportStore], job: ImportJob, rows: Sequence[ListRow]
) -> None:
    """Store the job and its rows; refused rows have their result at once."""
    async with units() as uow:
        waiting = any(row.command is not None for row in rows)
        await uow.store.add_import(job, uow.now, finished=not waiting)
        await uow.store.add_rows(job.import_id, rows)
        await uow.commit()


async def import_progress(units: UowFactory[ImportStore], import_id: str) -> ImportProgress | None:
    """The job, its counts, and (when done) every row's result in row order."""
    async with units() as uow:
        return await uow.store.progress(import_id, with_results=True)


async def prune_imports(units: UowFactory[ImportStore], keep: timedelta) -> int:
    """Forget finished jobs older than ``keep``. Re-imports are still recognised: that
    rests on the reports' own keys, not on the jobs."""
    async with units() as uow:
        removed = await uow.store.prune(uow.now - keep)
        await uow.commit()
        return removed


async def process_batch(units: UowFactory[ImportStore], policy: Policy, batch_size: int) -> int:
    """Accept the next waiting rows in one transaction; how many were done (0: none wait).

    If the transaction fails on one row (a value the database refuses, a race on a
    reference), the rows are taken again one at a time, so a bad row never blocks the
    others."""
    rows: list[PendingRow] = []
    try:
        async with units() as uow:
            rows = await uow.store.pending(batch_size)
            for row in rows:
                await _accept(uow, row, policy)
            for import_id in {row.import_id for row in rows}:
                await uow.store.finish_if_done(import_id, uow.now)
            await uow.commit()
            return len(rows)
    except (DBAPIError, OSError, TimeoutError):
        if not rows:
            raise  # the database is not there: the worker retries later
        log.warning("import batch failed; taking its rows one at a time", exc_info=True)
    except Exception:
        if not rows:
            raise
        log.exception("import batch failed; taking its rows one at a time")
    for row in rows:
        await _process_one(units, row, policy)
    return len(rows)


async def _accept(uow: UnitOfWork[ImportStore], row: PendingRow, policy: Policy) -> None:
    accepted = await accept_report(
        cast("UnitOfWork[Reports]", uow),
        row.command,
        policy,
        idempotency_key=row.idempotency_key,
        request_hash=row.request_hash,
        correlation_id=row.import_id,
    )
    await uow.store.set_result(row.import_id, row.number, accepted_result(row.number, accepted))


async def _process_one(units: UowFactory[ImportStore], row: PendingRow, policy: Policy) -> None:
    async def accept() -> dict[str, Any] | None:
        async with units() as uow:
            if (fresh := await uow.store.pending_row(row.import_id, row.number)) is None:
                return None  # another replica did it
            await _accept(uow, fresh, policy)
            await uow.store.finish_if_done(row.import_id, uow.now)
            await uow.commit()
            return None

    async def as_the_winner_did() -> dict[str, Any]:
        # Another channel sent the same reference at the same moment: answer as it did.
        accepted = await report_issue(
            cast("UowFactory[Reports]", units),
            row.command,
            policy=policy,
            idempotency_key=row.idempotency_key,
            request_hash=row.request_hash,
            correlation_id=row.import_id,
        )
        return accepted_result(row.number, accepted)

    try:
        # The row's result still to record; None once it is (here or by another replica).
        result = await first_wins(accept, constraints=REPORT_KEYS, then=as_the_winner_did)
        if result is None:
            return
    except DBAPIError as exc:
        if not _sqlstate(exc).startswith("22"):  # not a refused value: retry later
            raise
        result = _refused(row.number, "the database cannot store a value of this row")
    except (OSError, TimeoutError):
        raise  # the database is not there: the worker retries later
    except Exception:
        # A fault of ours on this row must not hold up the rows after it: say so, log it.
        log.exception("import %s row %d could not be accepted", row.import_id, row.number)
        result = _refused(row.number, "intake could not accept this row (logged); retry it")
    async with units() as uow:
        if await uow.store.pending_row(row.import_id, row.number) is not None:
            await uow.store.set_result(row.import_id, row.number, result)
            await uow.store.finish_if_done(row.import_id, uow.now)
            await uow.commit()


def _refused(number: int, reason: str) -> dict[str, Any]:
    errors = [{"field": "row", "column": None, "reason": reason}]
    return {"row": number, "status": "rejected", "errors": errors}


def accepted_result(number: int, accepted: Accepted) -> dict[str, Any]:
    return {
        "row": number,
        "status": "accepted",
        "issue_id": accepted.issue_id,
        "report_id": accepted.report_id,
        "already_imported": not accepted.created,
        "duplicate_of": accepted.duplicate_of,
        "similarity": accepted.similarity,
    }


def _sqlstate(exc: DBAPIError) -> str:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else ""


class ImportWorker:
    """Takes waiting rows batch after batch; sleeps until woken by an upload or the poll
    interval ends (rows left by a restart, or uploaded to another replica). A database
    outage is logged once, then once a minute (``clock``: for tests), then its end."""

    def __init__(
        self,
        process: Callable[[], Awaitable[int]],
        *,
        poll_seconds: float,
        retry_seconds: float,
        prune: Callable[[], Awaitable[int]] | None = None,
        prune_every: float = 3600.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._process = process
        self._poll = poll_seconds
        self._retry = retry_seconds
        self._prune = prune
        self._prune_every = prune_every
        self._pruned_at: float | None = None
        self._wake = asyncio.Event()
        self._outage = OutageLog(log, "import worker", clock)

    async def _prune_if_due(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._prune is None or (
            self._pruned_at is not None and now - self._pruned_at < self._prune_every
        ):
            return
        self._pruned_at = now
        try:
            if removed := await self._prune():
                log.info("pruned %d finished import jobs", removed)
        except Exception:
            log.warning("pruning import jobs failed; trying again later", exc_info=True)

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                done = await self._process()
            except Exception as exc:
                if is_transient(exc):
                    self._outage.failed(exc)
                else:
                    log.exception("import batch failed; retrying in %.1fs", self._retry)
                await asyncio.sleep(self._retry)
                continue
            self._outage.recovered()
            if done:
                await asyncio.sleep(0)  # let requests in between batches
                continue
            await self._prune_if_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
