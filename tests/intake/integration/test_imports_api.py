"""Compiled lists over HTTP: every row gets a result, bad rows never block good ones, a
re-import creates nothing new, progress shows while rows are accepted, bad files get 4xx."""

from __future__ import annotations

import asyncio
import io
import tracemalloc
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, text

from minqing.services.intake.app import create_app
from minqing.services.intake.channels.lists.api import validate_row
from minqing.services.intake.channels.lists.reader import ListReader
from minqing.services.intake.channels.lists.sheets import ListLimits, ListTooLarge, read_list
from minqing.services.intake.channels.lists.workbooks import WorkbookLimits
from minqing.services.intake.handlers import Policy
from minqing.services.intake.imports import (
    ImportJob,
    import_progress,
    process_batch,
    prune_imports,
    start_import,
)
from minqing.services.intake.store import SqlImportStore, import_rows, imports, plumbing, reports
from minqing.shared.contract import reference
from minqing.shared.contract.envelope import Envelope
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings
from tests.support import hostile_xlsx as hostile
from tests.support.harness import (
    eventually,
    isolated_settings,
    serve,
    serve_over_http,
    stream_messages,
)

GBK_LIST = (
    "三岐村民情台账\n"
    "编号,标题,描述,类别,村,反映人,电话,备注\n"
    "SQ-001,石关路路灯不亮,晚上一片黑,路灯,三岐村,王五,13912345678,\n"
    ",桥栏杆断了,东西河上的桥很危险,危桥,徐马,,,急\n"
    ",垃圾没人收,一周没人收,垃圾,火星村,,,\n"
    ",,,,,,,\n"
    ",邻居占地,,土地纠纷,戚庄,,,\n"
)


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    app = create_app(settings)
    async with serve(app) as client:
        yield client, app.state.runtime


async def upload(
    client: httpx.AsyncClient, data: bytes, name: str, *, wait: bool = True, **form: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/imports",
        params={"wait": str(wait).lower()},
        files={"file": (name, data)},
        data=form,
    )


async def count(rt: Runtime, table: Any) -> int:
    async with rt.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_gbk_list_with_good_and_bad_rows_gets_a_result_per_row_and_reimports_nothing(
    intake: tuple[httpx.AsyncClient, Runtime], settings: Settings
) -> None:
    client, rt = intake
    data = GBK_LIST.encode("gbk")
    response = await upload(client, data, "三岐.csv", recorded_by="cadre-liu")
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == body["status_url"]
    assert (body["status"], body["header_row"], body["total_rows"]) == ("done", 2, 4)
    assert body["blank_rows"] == [6] and body["ignored_columns"] == ["备注"]
    assert (body["accepted"], body["rejected"], body["new"], body["already_imported"]) == (
        2,
        2,
        2,
        0,
    )
    rows = {r["row"]: r for r in body["rows"]}
    assert sorted(rows) == [3, 4, 5, 7]
    assert rows[3]["status"] == rows[4]["status"] == "accepted"
    assert rows[3]["issue_id"] != rows[4]["issue_id"]
    assert rows[5]["status"] == "rejected"
    [village] = rows[5]["errors"]
    assert (village["field"], village["column"]) == ("village", "村")
    assert "unknown village '火星村'" in village["reason"]
    assert rows[7]["errors"][0]["field"] == "description"
    assert await count(rt, reports) == 2
    assert await count(rt, plumbing.outbox) == 2
    messages = await eventually(lambda: stream_messages(settings), lambda m: len(m) == 2)
    events = [Envelope.model_validate_json(m.data) for m in messages]
    assert {e.correlationid for e in events} == {body["import_id"]}
    assert {e.actor for e in events} == {"person:desk"}  # who uploaded the list
    assert {e.data["on_behalf_of"] for e in events} == {"cadre-liu"}
    assert {e.data["source"] for e in events} == {"village_branch"}

    again = (await upload(client, data, "三岐 (copy).csv")).json()
    assert again["import_id"] != body["import_id"]
    assert (again["new"], again["already_imported"], again["rejected"]) == (0, 2, 2)
    assert [r.get("issue_id") for r in again["rows"]] == [r.get("issue_id") for r in body["rows"]]
    assert await count(rt, reports) == 2
    assert await count(rt, plumbing.outbox) == 2
    status = await client.get(body["status_url"])
    assert status.status_code == 200 and status.json() == body

    async with rt.sessions() as session:
        ref, key = (
            await session.execute(
                select(reports.c.external_ref, reports.c.idempotency_key).order_by(
                    reports.c.received_at, reports.c.external_ref
                )
            )
        ).all()
    assert ref.external_ref == "SQ-001" and ref.idempotency_key is None
    assert key.external_ref is None and key.idempotency_key.startswith("list-")


async def test_the_same_row_twice_in_a_list_is_one_matter(
    intake: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = intake
    row = "Broken lane,Potholes by the school,roads,Sanqi Village\n"
    data = ("title,description,category,village\n" + row + row.replace(",", " ,")).encode()
    body = (await upload(client, data, "twice.csv")).json()
    first, second = body["rows"]
    assert first["issue_id"] == second["issue_id"]
    assert (first["already_imported"], second["already_imported"]) == (False, True)
    assert await count(rt, reports) == 1


async def test_an_xlsx_list_with_english_headers_merges_alike_rows_into_one_matter(
    nats_url: str, database_url: str
) -> None:
    settings = isolated_settings(nats_url, database_url, duplicate_threshold=85.0)
    lights = ["Shiguan Road lights out", "Dark at night", "street light", "Shihu", "Li"]
    data = xlsx(
        [
            ["Title", "Description", "Category", "Village", "Reporter", "Phone", "Lat", "Lon"],
            [*lights, 13800001111, 31.2, 120.6],
            ["Shiguan Road lights are out", "Still dark", "lights", "shihu", "Zhao"],
            ["Water cut", "No water since Monday", "water", "Sixing", None, None, 31.2, None],
        ]
    )
    app = create_app(settings)
    async with serve(app) as client:
        response = await upload(client, data, "list.xlsx", source="grid_center")
        assert response.status_code == 201, response.text
        body = response.json()
        first, second, third = body["rows"]
        assert body["format"] == "xlsx" and body["source"] == "grid_center"
        assert first["status"] == "accepted" and first["duplicate_of"] is None
        assert second["duplicate_of"] == first["issue_id"] == second["issue_id"]
        assert second["similarity"] >= 85
        assert body["duplicates"] == 1
        assert third["status"] == "rejected"
        assert [e["field"] for e in third["errors"]] == ["lat"]
        merged = (await client.get(f"/api/v1/issues/{first['issue_id']}/reports")).json()
        assert [r["reporter_phone_masked"] for r in merged] == ["138****1111", None]
        assert {r["source"] for r in merged} == {"grid_center"}


async def test_progress_shows_while_the_rows_are_accepted_batch_by_batch(
    nats_url: str, database_url: str
) -> None:
    settings = isolated_settings(nats_url, database_url, import_batch_size=5)
    rows = [f"Road {i},Potholes {i},roads,sanqi\n" for i in range(5)]
    rows += [f"Pipe {i},Leak {i},water,xuma\n" for i in range(5)]
    data = ("title,description,category,village\n" + "".join(rows)).encode()
    app = create_app(settings)
    rt: Runtime = app.state.runtime
    async with serve(app) as client:
        # Hold the lock intake takes for Xuma's water matters: the second batch waits on it.
        async with rt.sessions() as blocker:
            await blocker.execute(
                text("select pg_advisory_xact_lock(hashtextextended('xuma/water', 0))")
            )
            response = await upload(client, data, "long.csv", wait=False)
            assert response.status_code == 202, response.text
            started = response.json()
            assert started["status"] == "processing" and started["rows"] is None
            url = started["status_url"]
            halfway = await eventually(
                lambda: client.get(url), lambda r: r.json()["processed_rows"] == 5
            )
            assert halfway.json()["status"] == "processing"
            assert halfway.json()["total_rows"] == 10
            await blocker.commit()
        done = await eventually(lambda: client.get(url), lambda r: r.json()["status"] == "done")
        body = done.json()
        assert (body["processed_rows"], body["accepted"]) == (10, 10)
        assert [r["row"] for r in body["rows"]] == list(range(2, 12))
        assert await count(rt, reports) == 10


async def test_files_that_are_not_lists_are_refused_with_4xx_and_store_nothing(
    nats_url: str, database_url: str
) -> None:
    settings = isolated_settings(nats_url, database_url, import_max_rows=3, max_upload_bytes=4096)
    header = "title,description,category,village\n"
    app = create_app(settings)
    rt: Runtime = app.state.runtime
    async with serve(app) as client:
        xls = await upload(client, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "a.xls")
        assert xls.status_code == 415 and ".xlsx" in xls.json()["detail"]
        missing = await upload(client, b"title,village\nA,sanqi\n", "a.csv")
        assert missing.status_code == 422 and "描述" in missing.json()["detail"]
        empty = await upload(client, header.encode(), "a.csv")
        assert empty.status_code == 422 and "no rows" in empty.json()["detail"]
        many = await upload(client, (header + "a,b,roads,sanqi\n" * 4).encode(), "a.csv")
        assert many.status_code == 413 and "at most 3 rows" in many.json()["detail"]
        huge = await upload(client, (header + "a," + "b" * 5000 + ",roads,sanqi\n").encode(), "a")
        assert huge.status_code == 413
        source = await upload(client, (header + "a,b,roads,sanqi\n").encode(), "a", source="fax")
        assert source.status_code == 422 and source.json()["detail"][0]["loc"] == ["body", "source"]
        no_file = await client.post("/api/v1/imports", data={"source": "visit"})
        assert no_file.status_code == 422
        unknown = await client.get("/api/v1/imports/01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6")
        assert unknown.status_code == 404
        assert (await client.get("/api/v1/imports/not-an-id")).status_code == 404
        assert await count(rt, imports) == 0
        assert await count(rt, import_rows) == 0
        assert await count(rt, reports) == 0


class FailingOnReporter(SqlImportStore):
    """Intake's real store, with a fault of ours on one reporter's row."""

    async def add_contact(
        self, reporter_ref: str, name: str | None, phone: str | None, created_at: datetime
    ) -> None:
        if name == "Boom":
            raise RuntimeError("a fault on this row")
        await super().add_contact(reporter_ref, name, phone, created_at)


async def test_a_row_that_fails_in_its_batch_is_rejected_alone_and_the_others_are_kept(
    settings: Settings,
) -> None:
    reference.activate(reference.load(settings.reference_dir))
    rt = create_app(settings).state.runtime  # not started: this test is the worker
    units = rt.units_of_work(FailingOnReporter)
    text = "title,description,category,village,reporter_name\n" + "".join(
        f"Lane {i},Potholes,roads,sanqi,{name}\n" for i, name in enumerate(["Li", "Boom", "Wu"])
    )
    sheet = read_list(text.encode(), "faulty.csv", max_rows=10)
    rows = [validate_row(row, sheet, "village_branch", None) for row in sheet.rows]
    job = ImportJob(
        "01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6",
        "village_branch",
        "faulty.csv",
        "csv",
        1,
        sheet.columns,
        [],
        [],
        len(rows),
    )
    try:
        await start_import(units, job, rows)
        assert await process_batch(units, Policy(), batch_size=10) == 3
        assert await process_batch(units, Policy(), batch_size=10) == 0
        progress = await import_progress(units, job.import_id)
        async with rt.sessions() as session:
            query = select(reports.c.title).order_by(reports.c.title)
            titles = (await session.scalars(query)).all()
    finally:
        await rt.engine.dispose()
    assert progress is not None and progress.done
    assert [r["status"] for r in progress.results] == ["accepted", "rejected", "accepted"]
    assert "could not accept this row" in progress.results[1]["errors"][0]["reason"]
    assert titles == ["Lane 0", "Lane 2"]


async def test_finished_jobs_are_pruned_after_the_retention_and_waiting_ones_kept(
    settings: Settings,
) -> None:
    reference.activate(reference.load(settings.reference_dir))
    rt = create_app(settings).state.runtime  # not started: this test is the worker
    units = rt.units_of_work(SqlImportStore)
    sheet = read_list(b"title,description,category,village\nA,B,roads,sanqi\n", "a", max_rows=9)
    rows = [validate_row(row, sheet, "village_branch", None) for row in sheet.rows]

    def job(import_id: str) -> ImportJob:
        return ImportJob(import_id, "village_branch", "a", "csv", 1, sheet.columns, [], [], 1)

    finished, waiting = job("01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6"), job("01KB1Y8ZQ4J7ZKQ1V2S3T4W5X7")
    try:
        await start_import(units, finished, rows)
        assert await process_batch(units, Policy(), batch_size=10) == 1
        await start_import(units, waiting, rows)
        assert await prune_imports(units, timedelta(days=1)) == 0
        assert await prune_imports(units, timedelta(0)) == 1
        assert await import_progress(units, finished.import_id) is None
        kept = await import_progress(units, waiting.import_id)
        assert kept is not None and kept.counts == {"pending": 1}
        assert await count(rt, reports) == 1
    finally:
        await rt.engine.dispose()


def report(n: int) -> dict[str, Any]:
    """An ordinary report, as a town office sends one."""
    villages = ["sanqi", "xuma", "qizhuang"]
    categories = ["roads", "bridges", "garbage", "street_lights"]
    return {
        "title": f"Report {n} while lists are uploaded",
        "description": "An ordinary report.",
        "category": categories[n % len(categories)],
        "village": villages[n % len(villages)],
        "source": "visit",
    }


async def test_hostile_workbooks_are_refused_naming_the_limit_while_ordinary_reports_flow(
    settings: Settings,
) -> None:
    # Limits an eighth to a fifth of the defaults, bombs to match: each is still refused by
    # the limit it is aimed at, sooner (the reading children's CPU is most of this test).
    settings = settings.model_copy(
        update={
            "import_max_unzipped_bytes": 8 * 1024 * 1024,
            "import_max_cells": 100_000,
            "import_max_text_chars": 1_600_000,
        }
    )
    bombs = {
        "billion_laughs": (hostile.billion_laughs(), 422, "declares a DTD (<!DOCTYPE>)"),
        "external_entity": (hostile.external_entity(), 422, "declares a DTD (<!DOCTYPE>)"),
        # ~1.2 MB unzipping to 400 MB: before, 58 s of CPU and +570 MB in intake.
        "zip_bomb": (hostile.zip_bomb(400), 413, "(MINQING_IMPORT_MAX_UNZIPPED_BYTES)"),
        "cells": (hostile.zip_bomb(4), 413, "cells and rows (MINQING_IMPORT_MAX_CELLS)"),
        # ~10 KB of 240,000 shared strings (40 MB of them: before, 23 s of CPU and +240 MB).
        "shared_strings": (hostile.shared_strings_bomb(4), 413, "(MINQING_IMPORT_MAX_CELLS)"),
        "deep_nesting": (hostile.deep_nesting(), 422, "more than 100 levels deep"),
        "big_styles": (
            hostile.big_styles(300_000),
            413,
            "besides its rows, cells and shared strings",
        ),
        "row_beyond_the_grid": (hostile.row_beyond_the_grid(), 422, "Excel's last row"),
        "shared_text_bomb": (hostile.shared_text_bomb(), 413, "MINQING_IMPORT_MAX_TEXT_CHARS"),
    }
    app = create_app(settings)
    rt: Runtime = app.state.runtime
    async with serve_over_http(app) as client:
        tracemalloc.start()
        try:
            bombing = asyncio.gather(
                *(upload(client, data, f"{name}.xlsx") for name, (data, _, _) in bombs.items())
            )
            codes: list[int] = []
            while not bombing.done() or len(codes) < 20:
                answer = await client.post("/api/v1/reports", json=report(len(codes)))
                codes.append(answer.status_code)
            refusals = dict(zip(bombs, await bombing, strict=True))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert set(codes) == {201}, codes
        for name, (_, code, says) in bombs.items():
            answer = refusals[name]
            assert (name, answer.status_code) == (name, code), answer.text
            assert says in answer.json()["detail"], (name, answer.text)
        # What intake allocated meanwhile (the uploads, the reports): the bombs were unzipped
        # and parsed by children. Before, the zip bomb alone took hundreds of MB here.
        assert peak < 64 * 1024 * 1024, peak
        assert (await client.get("/readyz")).status_code == 200
        assert await count(rt, imports) == 0
        ordinary = await upload(client, hostile.workbook(), "ordinary.xlsx")
        assert ordinary.status_code == 201 and ordinary.json()["accepted"] == 1
    assert await count(rt, reports) == len(codes) + 1


LOOSE = ListLimits(WorkbookLimits(max_unzipped_bytes=1 << 30, max_cells=10**8), 10**9)


def reader_children() -> list[psutil.Process]:
    reader = "minqing.services.intake.channels.lists.reader"
    return [p for p in psutil.Process().children() if reader in p.cmdline()]


async def test_the_reader_refuses_what_needs_more_memory_than_it_may_take() -> None:
    reader = ListReader(10_000, LOOSE, memory_bytes=64 * 1024 * 1024, seconds=300)
    # 1.2 million shared strings, each a Python string in a list: well over 64 MiB.
    with pytest.raises(ListTooLarge, match=r"more than 64 MiB of memory \(MINQING_IMPORT_READER"):
        await reader.read(hostile.shared_strings_bomb(20), "strings.xlsx")
    assert reader_children() == []


async def test_the_reader_stops_a_read_that_takes_longer_than_its_time() -> None:
    reader = ListReader(10_000, LOOSE, memory_bytes=1 << 30, seconds=0.05)
    with pytest.raises(ListTooLarge, match=r"longer than 0.05 s \(MINQING_IMPORT_READER_SECONDS"):
        await reader.read(hostile.shared_strings_bomb(20), "strings.xlsx")
    assert reader_children() == []
