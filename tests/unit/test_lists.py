"""Reading compiled lists: encodings, formats, headers in Chinese or English, row numbers."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from services.intake.imports_api import validate_row
from services.intake.lists import (
    Row,
    TooManyRows,
    UnreadableList,
    UnsupportedFormat,
    read_list,
)
from shared import reference
from shared.settings import REFERENCE_DIR

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
