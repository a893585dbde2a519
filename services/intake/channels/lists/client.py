"""``minqing import``: a thin client of intake's HTTP import API.

It uploads the list, follows the import job with a progress bar (on stderr) and prints the
per-row report (or the job as JSON with ``--json``). Exit status: 0 every row accepted,
1 some rows rejected, 2 the file refused or intake not reachable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

IMPORTS_PATH = "/api/v1/imports"
POLL_SECONDS = 0.25
# Polling goes on through short outages (a restart of intake): the job is kept in its tables.
MAX_FAILED_POLLS = 40

ALL_ACCEPTED, SOME_REJECTED, REFUSED = 0, 1, 2


def run_import(
    path: Path,
    *,
    url: str,
    token: str | None,
    source: str,
    recorded_by: str | None,
    as_json: bool,
    out: Console,
    err: Console,
) -> int:
    """Upload ``path`` to intake at ``url`` as the holder of ``token``, follow the job,
    print the report; the exit code."""
    form = {"source": source, **({"recorded_by": recorded_by} if recorded_by else {})}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url.rstrip("/"), timeout=120.0, headers=headers) as http:
        try:
            with path.open("rb") as fh:
                response = http.post(IMPORTS_PATH, files={"file": (path.name, fh)}, data=form)
        except httpx.HTTPError as exc:
            err.print(f"cannot reach intake at {url}: {exc}", markup=False)
            return REFUSED
        if response.status_code not in (201, 202):
            # One line, as the server wrote it (never read as markup).
            reason = " ".join(_detail(response).split())
            err.print(
                f"{path.name} refused ({response.status_code}): {reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return REFUSED
        job = _follow(http, response.json(), err)
        if job is None:
            return REFUSED
    if as_json:
        out.print_json(json.dumps(job, ensure_ascii=False))
    else:
        _print_report(job, path.name, out)
    return ALL_ACCEPTED if job["rejected"] == 0 else SOME_REJECTED


def _follow(http: httpx.Client, job: dict[str, Any], err: Console) -> dict[str, Any] | None:
    """Poll the job until it is done, showing a progress bar; ``None`` if intake is gone."""
    failed = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as progress:
        bar = progress.add_task("importing", total=job["total_rows"])
        while True:
            progress.update(bar, completed=job["processed_rows"])
            if job["status"] == "done":
                return job
            time.sleep(POLL_SECONDS)
            try:
                response = http.get(job["status_url"])
                response.raise_for_status()
                job = response.json()
                failed = 0
            except httpx.HTTPError as exc:
                failed += 1
                if failed >= MAX_FAILED_POLLS:
                    err.print(
                        f"lost intake while following the import ({exc}); it goes on there: "
                        f"GET {http.base_url}{job['status_url']}",
                        markup=False,
                    )
                    return None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.text[:500]
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in detail
        )
    return str(detail)


def _print_report(job: dict[str, Any], name: str, out: Console) -> None:
    out.print(
        f"{name}: {job['total_rows']} rows: {job['accepted']} accepted "
        f"({job['new']} new, {job['already_imported']} already imported, "
        f"{job['duplicates']} joined an open matter), {job['rejected']} rejected; "
        f"import {job['import_id']}",
        markup=False,
        highlight=False,
    )
    if job["blank_rows"]:
        out.print(f"blank rows (not matters): {job['blank_rows']}", markup=False, highlight=False)
    if job["ignored_columns"]:
        ignored = ", ".join(job["ignored_columns"])
        out.print(f"columns not used: {ignored}", markup=False, highlight=False)
    for row in job["rows"]:
        out.print(_row_line(row), markup=False, highlight=False, soft_wrap=True)


def _row_line(row: dict[str, Any]) -> str:
    if row["status"] == "accepted":
        if row["already_imported"]:
            how = "already imported"
        elif row["duplicate_of"]:
            how = f"joined open matter (similarity {row['similarity']:.0f})"
        else:
            how = "new matter"
        return f"row {row['row']}: accepted {row['issue_id']} ({how})"
    reasons = "; ".join(_error_text(e) for e in row["errors"])
    return f"row {row['row']}: rejected: {reasons}"


def _error_text(error: dict[str, Any]) -> str:
    column = f" ({error['column']})" if error["column"] else ""
    return f"{error['field']}{column}: {error['reason']}"
