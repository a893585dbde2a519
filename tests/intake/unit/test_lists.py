"""Reading compiled lists: encodings, formats, headers in Chinese or English, row numbers."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import Workbook

from minqing.services.intake.channels.lists import sheets as lists
from minqing.services.intake.channels.lists.api import validate_row
from minqing.services.intake.channels.lists.sheets import (
    ListLimits,
    ListRefused,
    ListTooLarge,
    Row,
    TooManyRows,
    UnreadableList,
    UnsupportedFormat,
    read_list,
)
from minqing.services.intake.channels.lists.workbooks import WorkbookLimits
from minqing.shared.contract import reference
from minqing.shared.service.settings import REFERENCE_DIR
from tests.support import hostile_xlsx as hostile

CHINESE = (
    "标题,描述,类别,村,地址,反映人,电话,编号\n"
    "石关路路灯不亮,晚上一片黑,路灯,三岐村,石关路口,王五,13912345678,SQ-001\n"
    "桥栏杆断了,危险,危桥,徐马,,,,\n"
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


def test_a_utf8_csv_with_chinese_headers_maps_every_column() -> None:
    sheet = read_list(CHINESE.encode(), "list.csv", max_rows=10)
    assert sheet.format == "csv"
    assert sheet.header_row == 1
    assert sheet.columns["reporter_name"] == "反映人"
    assert [r.number for r in sheet.rows] == [2, 3]
    assert sheet.rows[0].cells["phone"] == "13912345678"
    assert sheet.rows[1].cells == {
        "title": "桥栏杆断了",
        "description": "危险",
        "category": "危桥",
        "village": "徐马",
    }


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk", "gb18030"])
def test_bom_and_gbk_files_read_the_same_as_utf8(encoding: str) -> None:
    plain = read_list(CHINESE.encode(), "list.csv", max_rows=10)
    assert read_list(CHINESE.encode(encoding), "list.csv", max_rows=10) == plain


def test_a_title_above_the_header_and_blank_rows_are_passed_over_and_reported() -> None:
    text = (
        "三岐村民情台账,,,\n"
        "Title,Description,Category,Village,Remarks\n"
        ",,,,\n"
        "Broken road,Potholes,roads,sanqi,call first\n"
    )
    sheet = read_list(text.encode(), None, max_rows=10)
    assert sheet.header_row == 2
    assert sheet.blank_rows == [3]
    assert sheet.ignored_columns == ["Remarks"]
    [row] = sheet.rows
    assert row.number == 4


def test_trailing_blank_rows_are_not_listed_and_a_title_line_does_not_hide_the_separator() -> None:
    text = (
        "三岐村台账\ntitle\tdescription\tcategory\tvillage\nA\tB\troads\tsanqi\n" + "\t\t\t\n" * 50
    )
    sheet = read_list(text.encode(), "list.tsv", max_rows=10)
    assert sheet.header_row == 2
    assert [r.number for r in sheet.rows] == [3]
    assert sheet.blank_rows == []


def test_tabs_and_multiline_cells_keep_the_row_numbers_a_spreadsheet_shows() -> None:
    text = (
        'title\tdescription\tcategory\tvillage\nA\t"two\nlines"\troads\tsanqi\nB\tx\troads\txuma\n'
    )
    sheet = read_list(text.encode(), "list.tsv", max_rows=10)
    assert [r.number for r in sheet.rows] == [2, 4]
    assert sheet.rows[0].cells["description"] == "two\nlines"


def test_an_xlsx_keeps_a_phone_typed_as_a_number_whole() -> None:
    data = xlsx(
        [
            ["Village list"],
            ["标题", "描述", "类别", "村", "电话", "纬度", "经度"],
            ["路灯不亮", "石关路", "路灯", "sanqi", 13912345678, 31.25, 120.5],
        ]
    )
    sheet = read_list(data, "list.xlsx", max_rows=10)
    assert sheet.format == "xlsx"
    assert sheet.header_row == 2
    [row] = sheet.rows
    assert row.number == 3
    assert row.cells["phone"] == "13912345678"
    assert row.cells["lat"] == "31.25"


def test_missing_required_columns_are_named_in_both_languages() -> None:
    with pytest.raises(UnreadableList, match=r"description: 描述 / description") as info:
        read_list(b"title,category,village\nA,roads,sanqi\n", "x.csv", max_rows=10)
    assert "row 1" in str(info.value)


def test_two_columns_meaning_the_same_field_are_refused() -> None:
    with pytest.raises(UnreadableList, match="both mean 'title'"):
        read_list("标题,title,描述,类别,村\na,b,c,roads,sanqi\n".encode(), "x.csv", max_rows=10)


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "list.xls", "97-2003"),
        (b"%PDF-1.7\n\x00\x01binary", "list.pdf", "binary"),
        ("标题\t描述\n".encode("utf-16"), "list.txt", "UTF-16"),
        (b"title,description\n", "list.xlsx", "not an XLSX"),
    ],
)
def test_other_formats_are_refused_saying_what_to_upload(data: bytes, name: str, says: str) -> None:
    with pytest.raises(UnsupportedFormat, match=says):
        read_list(data, name, max_rows=10)


def test_a_broken_workbook_or_undecodable_text_is_unreadable() -> None:
    with pytest.raises(UnreadableList, match="XLSX"):
        read_list(b"PK\x03\x04 not really a zip", "list.xlsx", max_rows=10)
    with pytest.raises(UnreadableList, match="neither UTF-8 nor GB18030"):
        read_list(b"title,description\n\xff\xff\xff\xff,x\n", "list.csv", max_rows=10)


def test_more_rows_than_allowed_refuse_the_file() -> None:
    text = "title,description,category,village\n" + "a,b,roads,sanqi\n" * 4
    assert len(read_list(text.encode(), None, max_rows=4).rows) == 4
    with pytest.raises(TooManyRows, match="at most 3 rows"):
        read_list(text.encode(), None, max_rows=3)


def test_a_row_becomes_a_command_with_codes_resolved_and_a_content_key() -> None:
    reference.activate(reference.load(REFERENCE_DIR))
    sheet = read_list(CHINESE.encode(), "list.csv", max_rows=10)
    first, second = (validate_row(r, sheet, "village_branch", "cadre-liu") for r in sheet.rows)
    assert first.command is not None and second.command is not None
    assert first.command.category == "street_lights"
    assert first.command.village == "sanqi"
    assert first.command.external_ref == "SQ-001"
    assert first.idempotency_key is None  # its reference identifies it
    assert second.command.village == "xuma"
    assert second.command.recorded_by == "cadre-liu"
    assert second.idempotency_key is not None and second.idempotency_key.startswith("list-")
    again = validate_row(sheet.rows[1], sheet, "village_branch", "cadre-liu")
    assert again.idempotency_key == second.idempotency_key
    other_source = validate_row(sheet.rows[1], sheet, "grid_center", "cadre-liu")
    assert other_source.idempotency_key != second.idempotency_key


def test_a_bad_row_names_each_field_with_its_column() -> None:
    reference.activate(reference.load(REFERENCE_DIR))
    text = "标题,描述,类别,村,电话,纬度\n" + ",说明,火箭,三岐,call me,north\n"
    sheet = read_list(text.encode(), "list.csv", max_rows=10)
    row = validate_row(sheet.rows[0], sheet, "village_branch", None)
    assert row.command is None
    errors = {e.field: e for e in row.errors}
    assert set(errors) == {"title", "category", "phone", "lat"}
    assert errors["title"].column == "标题"
    assert "empty" in errors["title"].reason
    assert "unknown category '火箭'" in errors["category"].reason
    assert errors["phone"].column == "电话"
    assert row.result() == {
        "row": 2,
        "status": "rejected",
        "errors": [{"field": e.field, "column": e.column, "reason": e.reason} for e in row.errors],
    }


def test_a_control_character_in_a_cell_is_named_escaped_never_stored_raw() -> None:
    reference.activate(reference.load(REFERENCE_DIR))
    sheet = read_list(CHINESE.encode(), "list.csv", max_rows=10)
    cells = {"title": "a", "description": "b", "category": "roads", "village": "x\x00y"}
    row = validate_row(Row(9, cells), sheet, "village_branch", None)
    [error] = row.errors
    assert error.field == "village" and "\x00" not in error.reason
    assert "x\\x00y" in error.reason


def test_a_workbook_built_by_hand_reads_as_a_list() -> None:
    sheet = read_list(hostile.workbook(), "list.xlsx", max_rows=10)
    [row] = sheet.rows
    assert row.cells == dict(zip(hostile.HEADER, hostile.ROW, strict=True))


# Each hostile workbook, refused before openpyxl parses it, with the limit it passed. Before
# these checks: entities and a shared string out of range were 500s; the bombs cost minutes
# of CPU or hundreds of MB (issue 13, item 5); a row numbered 10^12 never finished.
HOSTILE = [
    pytest.param(
        hostile.billion_laughs, UnreadableList, "declares a DTD (<!DOCTYPE>)", id="billion_laughs"
    ),
    pytest.param(
        hostile.external_entity, UnreadableList, "declares a DTD (<!DOCTYPE>)", id="external_entity"
    ),
    pytest.param(
        lambda: hostile.zip_bomb(100),
        ListTooLarge,
        "unzips to 100.0 MiB; at most 64.0 MiB (MINQING_IMPORT_MAX_UNZIPPED_BYTES)",
        id="zip_bomb_over_the_unzipped_size",
    ),
    pytest.param(
        lambda: hostile.zip_bomb(40),
        ListTooLarge,
        "more than 500,000 cells and rows (MINQING_IMPORT_MAX_CELLS)",
        id="zip_bomb_over_the_cells",
    ),
    pytest.param(
        lambda: hostile.shared_strings_bomb(20),
        ListTooLarge,
        "shared strings are more than 500,000 (MINQING_IMPORT_MAX_CELLS)",
        id="shared_strings_bomb",
    ),
    pytest.param(
        hostile.many_cells,
        UnreadableList,
        "has more than 16,384 cells (Excel's last column is XFD)",
        id="many_cells",
    ),
    pytest.param(
        hostile.many_entries,
        ListTooLarge,
        "holds 20,005 files (zip entries); at most 1,000 are read (MINQING_IMPORT_MAX_ZIP_ENTRIES)",
        id="many_entries",
    ),
    pytest.param(
        hostile.deep_nesting,
        UnreadableList,
        "nests XML more than 100 levels deep",
        id="deep_nesting",
    ),
    pytest.param(
        hostile.big_styles,
        ListTooLarge,
        "more than 250,000 XML elements besides its rows, cells and shared strings "
        "(the last was in the part 'xl/styles.xml')",
        id="big_styles",
    ),
    pytest.param(
        hostile.row_beyond_the_grid,
        UnreadableList,
        "Excel's last row is 1,048,576",
        id="row_beyond_the_grid",
    ),
    pytest.param(
        hostile.shared_text_bomb,
        ListTooLarge,
        "cells hold more than 16,000,000 characters together (MINQING_IMPORT_MAX_TEXT_CHARS)",
        id="shared_text_bomb",
    ),
    pytest.param(
        hostile.bzip2_part, UnreadableList, "compressed with zip method 12", id="bzip2_part"
    ),
    pytest.param(
        hostile.shared_index_out_of_range,
        UnreadableList,
        "IndexError",
        id="shared_index_out_of_range",
    ),
]


@pytest.mark.parametrize(("build", "refusal", "says"), HOSTILE)
def test_a_hostile_workbook_is_refused_naming_the_limit_it_passes(
    build: Callable[[], bytes], refusal: type[ListRefused], says: str
) -> None:
    with pytest.raises(refusal) as info:
        read_list(build(), "list.xlsx", max_rows=10_000)
    assert says in str(info.value)


def test_an_external_entity_never_reads_the_file_it_names(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-content")
    with pytest.raises(UnreadableList) as info:
        read_list(hostile.external_entity(secret.as_uri()), "list.xlsx", max_rows=10)
    assert "the-secret-content" not in str(info.value)


def test_the_limits_are_those_given() -> None:
    bomb = hostile.zip_bomb(2)
    tight = ListLimits(WorkbookLimits(max_unzipped_bytes=1024 * 1024))
    with pytest.raises(ListTooLarge, match=r"at most 1\.0 MiB"):
        read_list(bomb, "list.xlsx", max_rows=10_000, limits=tight)
    few = ListLimits(WorkbookLimits(max_cells=1_000))
    with pytest.raises(ListTooLarge, match="more than 1,000 cells"):
        read_list(bomb, "list.xlsx", max_rows=10_000, limits=few)
    text = "title,description,category,village\n" + "a,b,roads,sanqi\n" * 3
    with pytest.raises(ListTooLarge, match="more than 20 characters"):
        read_list(text.encode(), "list.csv", max_rows=10, limits=ListLimits(max_text_chars=20))


def test_rows_missing_up_to_the_last_row_of_the_sheet_are_passed_over_not_read_cell_by_cell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # openpyxl fills the 1,048,573 rows missing before the last with blanks: before, each
    # of their 100 cells was turned into text (seconds of CPU for a 2 KB file).
    texts: list[object] = []
    cell_text = lists._cell_text
    monkeypatch.setattr(lists, "_cell_text", lambda v: texts.append(v) or cell_text(v))
    sheet = read_list(hostile.far_rows(), "list.xlsx", max_rows=10)
    assert [r.number for r in sheet.rows] == [2] and sheet.blank_rows == []
    assert len(texts) < 1_000
