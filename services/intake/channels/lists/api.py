"""Compiled lists over HTTP: upload a CSV or XLSX (an import job), then follow its progress.

Each row is checked as the HTTP report is (``ReportIn``: the same codes, aliases and
lengths); a refused row's result names its row, field and column. The rows that pass are
accepted in the background by the import worker.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Path,
    Query,
    Response,
    UploadFile,
    status,
)
from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError

from minqing.services.intake.channels.lists.reader import ListReader
from minqing.services.intake.channels.lists.sheets import (
    ListLimits,
    ListRefused,
    ListTooLarge,
    Row,
    Sheet,
    UnsupportedFormat,
    printable,
)
from minqing.services.intake.channels.lists.workbooks import WorkbookLimits
from minqing.services.intake.deps import SettingsDep
from minqing.services.intake.imports import (
    ImportJob,
    ImportProgress,
    ImportStore,
    ListRow,
    RowError,
    import_progress,
    start_import,
)
from minqing.services.intake.inputs import ReportIn
from minqing.shared.contract.reference import code_of
from minqing.shared.domain.ids import new_id
from minqing.shared.domain.text import Line
from minqing.shared.identity.web import CallerDep
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.service.settings import Settings
from minqing.shared.web.deps import from_state
from minqing.shared.web.edge import ULID_PATTERN, quoted
from minqing.shared.web.errors import unprocessable

PREFIX = "/api/v1/imports"
WAIT_POLL_SECONDS = 0.1
ImportId = Annotated[str, Path(pattern=ULID_PATTERN, description="The import job's id (a ULID)")]

# Where ReportIn puts each list column.
_LOCATIONS: dict[tuple[str, ...], str] = {
    ("reporter", "name"): "reporter_name",
    ("reporter", "phone"): "phone",
    ("location", "address"): "address",
    ("location", "lat"): "lat",
    ("location", "lon"): "lon",
    ("location",): "lat",
    ("external_ref",): "ref",
}


def validate_row(row: Row, sheet: Sheet, source: str, recorded_by: str | None) -> ListRow:
    """A row as a report command with its idempotency key, or the reasons it is refused."""
    cells = row.cells
    payload: dict[str, Any] = {
        name: cells[name]
        for name in ("title", "description", "category", "village")
        if name in cells
    }
    payload["source"] = source
    reporter = {k: cells.get(c) for k, c in (("name", "reporter_name"), ("phone", "phone"))}
    if any(reporter.values()):
        payload["reporter"] = {k: v for k, v in reporter.items() if v}
    location: dict[str, Any] = {
        "address": cells.get("address"),
        "lat": _number(cells.get("lat")),
        "lon": _number(cells.get("lon")),
    }
    if any(v is not None for v in location.values()):
        payload["location"] = {k: v for k, v in location.items() if v is not None}
    if by := cells.get("recorded_by", recorded_by):
        payload["recorded_by"] = by
    if "ref" in cells:
        payload["external_ref"] = cells["ref"]
    try:
        report = ReportIn.model_validate(payload)
    except ValidationError as exc:
        errors = tuple(_row_error(error, sheet) for error in exc.errors())
        return ListRow(row.number, None, errors)
    if report.external_ref:
        return ListRow(row.number, report.to_command())
    # No reference of the sender's: the same matter (the same content from the same source,
    # whoever uploads the list) is the same row.
    content = report.model_dump_json(exclude={"recorded_by"})
    digest = hashlib.sha256(content.encode()).hexdigest()
    return ListRow(row.number, report.to_command(), (), f"list-{digest}", digest)


def _number(cell: str | None) -> float | str | None:
    if cell is None:
        return None
    try:
        return float(cell)
    except ValueError:
        return cell  # refused by ReportIn, naming the column


def _row_error(error: Any, sheet: Sheet) -> RowError:
    loc = tuple(str(part) for part in error.get("loc", ()))
    name = _LOCATIONS.get(loc, loc[0] if loc else "row")
    if error.get("type") == "missing":
        reason = "the cell is empty; every matter needs it"
    else:
        reason = str(error.get("msg", "")).removeprefix("Value error, ")
    return RowError(name, sheet.columns.get(name), printable(str(quoted(reason, 2000))))


class ImportRowOut(BaseModel):
    """One row's result: accepted (the matter it is on) or rejected (why)."""

    row: int
    status: str
    issue_id: str | None = None
    report_id: str | None = None
    already_imported: bool | None = None
    duplicate_of: str | None = None
    similarity: float | None = None
    errors: list[dict[str, Any]] | None = None


class ImportOut(BaseModel):
    """An import job: how its file was read, how far it is, and (once done) every row."""

    import_id: str
    status: str  # processing | done
    status_url: str
    source: str
    filename: str | None
    format: str
    header_row: int
    columns: dict[str, str]
    ignored_columns: list[str]
    blank_rows: list[int]
    total_rows: int
    processed_rows: int
    accepted: int
    rejected: int
    created_at: datetime | None
    finished_at: datetime | None
    new: int | None = None
    already_imported: int | None = None
    duplicates: int | None = None
    rows: list[ImportRowOut] | None = None

    @classmethod
    def of(cls, progress: ImportProgress) -> ImportOut:
        job = progress.job
        results = [ImportRowOut.model_validate(r) for r in progress.results]
        accepted = [r for r in results if r.status == "accepted"]
        done = progress.done
        return cls(
            import_id=job.import_id,
            status="done" if done else "processing",
            status_url=f"{PREFIX}/{job.import_id}",
            source=job.source,
            filename=job.filename,
            format=job.format,
            header_row=job.header_row,
            columns=job.columns,
            ignored_columns=job.ignored_columns,
            blank_rows=job.blank_rows,
            total_rows=job.total_rows,
            processed_rows=progress.processed,
            accepted=progress.counts.get("accepted", 0),
            rejected=progress.counts.get("rejected", 0),
            created_at=job.created_at,
            finished_at=job.finished_at,
            new=sum(not r.already_imported for r in accepted) if done else None,
            already_imported=sum(bool(r.already_imported) for r in accepted) if done else None,
            duplicates=sum(r.duplicate_of is not None for r in accepted) if done else None,
            rows=results if done else None,
        )


def _validate(sheet: Sheet, source: str, by: str | None, actor: str) -> list[ListRow]:
    """The rows as reports put on the list by ``actor`` (who uploads the list)."""
    rows = [validate_row(row, sheet, source, by) for row in sheet.rows]
    return [
        row if row.command is None else replace(row, command=replace(row.command, actor_id=actor))
        for row in rows
    ]


def list_reader(settings: Settings) -> ListReader:
    """Lists read in a child process, within the limits of ``settings``."""
    workbook = WorkbookLimits(
        max_unzipped_bytes=settings.import_max_unzipped_bytes,
        max_entries=settings.import_max_zip_entries,
        max_cells=settings.import_max_cells,
    )
    limits = ListLimits(workbook, max_text_chars=settings.import_max_text_chars)
    return ListReader(
        settings.import_max_rows,
        limits,
        memory_bytes=settings.import_reader_memory_bytes,
        seconds=settings.import_reader_seconds,
    )


@dataclass(frozen=True)
class Imports:
    """What the list routes use: units of work on import jobs, the list reader, and a
    way to wake the import worker."""

    units: UowFactory[ImportStore]
    reader: ListReader
    wake: Callable[[], None]


ImportsDep = Annotated[Imports, Depends(from_state("imports"))]  # put there by ``app.py``
ERRORS: dict[type[Exception], int] = {
    UnsupportedFormat: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    ListTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    ListRefused: status.HTTP_422_UNPROCESSABLE_CONTENT,
}
"""A list refused, as HTTP statuses (registered on the app by ``app.py``)."""

router = APIRouter(prefix=PREFIX, tags=["compiled lists"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        201: {"description": "With wait=true: the list is done; the report has every row"},
        413: {
            "description": "The file, its rows, or what its workbook unzips to is over a "
            "limit (named in the detail)"
        },
        415: {"description": "Neither CSV nor XLSX"},
        **unprocessable(
            "Not a list: encoding, no header, missing required columns, a workbook with "
            "XML entities or not readable"
        ),
    },
)
async def post_import(
    file: Annotated[UploadFile, File(description="The list: CSV (UTF-8 or GB18030) or XLSX")],
    response: Response,
    imports: ImportsDep,
    settings: SettingsDep,
    source: Annotated[str, Form(), AfterValidator(code_of("sources"))] = "village_branch",
    recorded_by: Annotated[
        Annotated[Line, StringConstraints(min_length=1, max_length=100)] | None, Form()
    ] = None,
    wait: Annotated[bool, Query(description="Wait (a while) for the per-row report")] = False,
    *,
    caller: CallerDep,
) -> ImportOut:
    """Upload a compiled list (one matter per row); its rows are accepted in the
    background. Follow ``status_url`` for progress and, when done, the per-row report."""
    sheet = await imports.reader.read(await file.read(), file.filename)
    rows = await asyncio.to_thread(_validate, sheet, source, recorded_by, caller.id)
    job = _job(sheet, source, file.filename, len(rows))
    await start_import(imports.units, job, rows)
    imports.wake()
    seconds = settings.import_wait_seconds if wait else 0
    progress = await _wait_for(imports.units, job.import_id, seconds)
    assert progress is not None, "the job was just stored"
    response.headers["Location"] = f"{PREFIX}/{job.import_id}"
    if progress.done:
        response.status_code = status.HTTP_201_CREATED
    return ImportOut.of(progress)


@router.get("/{import_id}", responses={404: {"description": "No such import"}})
async def get_import(import_id: ImportId, imports: ImportsDep) -> ImportOut:
    """An import's progress; once done, every row's result in row order."""
    progress = await import_progress(imports.units, import_id)
    if progress is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id}")
    return ImportOut.of(progress)


def _job(sheet: Sheet, source: str, filename: str | None, total_rows: int) -> ImportJob:
    return ImportJob(
        import_id=new_id(),
        source=source,
        filename=printable(str(quoted(filename or "", 200))) or None,
        format=sheet.format,
        header_row=sheet.header_row,
        columns=sheet.columns,
        ignored_columns=sheet.ignored_columns,
        blank_rows=sheet.blank_rows,
        total_rows=total_rows,
    )


async def _wait_for(
    units: UowFactory[ImportStore], import_id: str, seconds: float
) -> ImportProgress | None:
    """The job's progress once done, or after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        progress = await import_progress(units, import_id)
        if progress is None or progress.done or loop.time() >= deadline:
            return progress
        await asyncio.sleep(WAIT_POLL_SECONDS)
