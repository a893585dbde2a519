"""`minqing import` as a user runs it: the real command against intake serving on a port."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import uvicorn
from openpyxl import Workbook

from minqing.services.intake.app import create_app
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.support import hostile_xlsx as hostile
from tests.support.harness import isolated_settings
from tests.support.identity import enrol_at, token_of

CSV_LIST = (
    "标题,描述,类别,村,反映人,电话\n"
    "石关路路灯不亮,晚上一片黑,路灯,三岐村,王五,13912345678\n"
    "垃圾没人收,一周没人收,垃圾,火星村,,\n"
    "桥栏杆断了,东西河上的桥很危险,危桥,徐马,,\n"
)


@pytest.fixture
async def intake_url(nats_url: str, database_url: str) -> AsyncIterator[str]:
    """Intake serving HTTP on a free port, as `minqing serve intake` would."""
    settings: Settings = isolated_settings(nats_url, database_url, import_batch_size=10)
    port = free_port()
    enrol_at(database_url)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def minqing_import(path: Path, url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINQING_")}
    env["MINQING_TOKEN"] = token_of("reporter")  # a reporter's token, as a village cadre has
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minqing",
        "import",
        str(path),
        "--url",
        url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_csv_list_reports_each_row_and_a_reimport_is_recognised(
    intake_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "三岐村.csv"
    path.write_bytes(CSV_LIST.encode("utf-8-sig"))

    code, out, err = await minqing_import(path, intake_url, "--recorded-by", "cadre-liu")
    assert code == 1, err  # a row was rejected
    lines = out.splitlines()
    assert lines[0].startswith("三岐村.csv: 3 rows: 2 accepted (2 new, 0 already imported")
    assert "1 rejected" in lines[0]
    assert lines[1].startswith("row 2: accepted ") and lines[1].endswith("(new matter)")
    assert lines[2].startswith("row 3: rejected: village (村): unknown village '火星村'")
    assert lines[3].startswith("row 4: accepted ")
    assert "3/3" in err  # the progress bar, finished

    code, out, err = await minqing_import(path, intake_url, "--json")
    assert code == 1, err
    job = json.loads(out)
    assert (job["new"], job["already_imported"], job["rejected"]) == (0, 2, 1)
    first_ids = [line.split()[3] for line in lines[1:] if " accepted " in line]
    assert [r["issue_id"] for r in job["rows"] if r["status"] == "accepted"] == first_ids


async def test_a_long_xlsx_list_is_followed_to_the_end(intake_url: str, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Title", "Description", "Category", "Village", "Ref"])
    for i in range(120):
        sheet.append([f"Pothole {i}", f"On lane {i}", "roads", "Qizhuang", f"QZ-{i:04d}"])
    data = io.BytesIO()
    book.save(data)
    path = tmp_path / "qizhuang.xlsx"
    path.write_bytes(data.getvalue())

    code, out, err = await minqing_import(path, intake_url, "--json", "--source", "grid_center")
    assert code == 0, err
    job = json.loads(out)
    assert job["status"] == "done" and job["format"] == "xlsx"
    assert (job["total_rows"], job["accepted"], job["new"]) == (120, 120, 120)
    assert [r["row"] for r in job["rows"]] == list(range(2, 122))
    assert "120/120" in err


async def test_a_refused_file_or_an_absent_intake_exits_2_saying_why(
    intake_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64))
    code, _, err = await minqing_import(path, intake_url)
    assert code == 2 and "refused (415)" in err and ".xlsx" in err
    csv = tmp_path / "list.csv"
    csv.write_text(CSV_LIST)
    code, _, err = await minqing_import(csv, f"http://127.0.0.1:{free_port()}")
    assert code == 2 and "cannot reach intake" in err


@pytest.mark.parametrize(
    ("build", "code", "says"),
    [
        (
            lambda: hostile.zip_bomb(400),
            413,
            "at most 64.0 MiB (MINQING_IMPORT_MAX_UNZIPPED_BYTES)",
        ),
        (hostile.external_entity, 422, "declares a DTD (<!DOCTYPE>)"),
        # A reason with brackets is printed as written (not as markup), on one line.
        (hostile.entity_in_content_types, 422, "the part '[Content_Types].xml' declares a DTD"),
    ],
    ids=["zip_bomb", "external_entity", "entity_in_content_types"],
)
async def test_a_hostile_workbook_exits_2_with_one_line_naming_the_limit(
    intake_url: str, tmp_path: Path, build: Callable[[], bytes], code: int, says: str
) -> None:
    path = tmp_path / "三岐村台账.xlsx"
    path.write_bytes(build())
    status, out, err = await minqing_import(path, intake_url)
    assert (status, out) == (2, "")
    [line] = err.strip().splitlines()
    assert line.startswith(f"三岐村台账.xlsx refused ({code}): ") and says in line
