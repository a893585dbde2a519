"""Compiled lists: a spreadsheet (CSV or XLSX) read into rows of named cells. Pure: no I/O.

A list has a header row naming its columns (Chinese or English, see ``COLUMNS``) and one
matter per row. Rows above the header (a sheet title such as "三岐村民情台账") are passed
over; fully blank rows are counted, not matters. Row numbers are the ones a spreadsheet
shows: the first line of the file is row 1.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal

from minqing.services.intake.channels.lists.workbooks import (
    WorkbookForbidden,
    WorkbookLimits,
    WorkbookTooLarge,
    check_workbook,
)

Format = Literal["csv", "xlsx"]

# Each field and the headers it is recognised by (compared without spaces, underscores,
# hyphens, asterisks, colons or case). The first two are the documented zh/en names.
COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("标题", "title", "事项", "事项标题", "问题", "subject"),
    "description": ("描述", "description", "详情", "问题描述", "内容", "情况说明", "details"),
    "category": ("类别", "category", "分类", "事项类别", "问题类别"),
    "village": (
        "村",
        "village",
        "村(社区)",
        "村\uff08社区\uff09",
        "村社区",
        "社区",
        "村庄",
        "community",
    ),
    "address": ("地址", "address", "地点", "位置", "location"),
    "reporter_name": ("反映人", "reporter_name", "反映人姓名", "姓名", "联系人", "reporter"),
    "phone": ("电话", "phone", "联系电话", "手机", "手机号", "reporter_phone", "mobile"),
    "ref": ("编号", "ref", "台账编号", "external_ref"),
    "recorded_by": ("登记人", "recorded_by", "记录人"),
    "lat": ("纬度", "lat", "latitude"),
    "lon": ("经度", "lon", "longitude"),
}
REQUIRED = ("title", "description", "category", "village")
# The header is looked for in the first rows (a title or a note may come above it).
HEADER_SEARCH_ROWS = 10
MAX_COLUMNS = 100

_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # .xls (Excel 97-2003), .doc
_SEPARATORS = ",\t;"


class ListRefused(ValueError):
    """The file as a whole cannot be read as a list; nothing of it was imported."""


class UnsupportedFormat(ListRefused):
    """Neither CSV nor XLSX."""


class UnreadableList(ListRefused):
    """A CSV or XLSX whose content is not a list: encoding, structure, missing columns."""


class ListTooLarge(ListRefused):
    """Over a limit of size: the file, its rows, what its workbook unzips to."""


class TooManyRows(ListTooLarge):
    """More rows than a list may have."""


@dataclass(frozen=True)
class ListLimits:
    """What a list may hold besides its rows: an XLSX is checked before it is parsed
    (``workbooks.check_workbook``); the text of the rows as read is bounded for any format."""

    workbook: WorkbookLimits = field(default_factory=WorkbookLimits)
    # Many cells may show one shared string: what the rows hold can outgrow the file.
    max_text_chars: int = 16_000_000


@dataclass(frozen=True)
class Row:
    """One data row: its number as a spreadsheet shows it, and its non-empty cells by field."""

    number: int
    cells: dict[str, str]


@dataclass(frozen=True)
class Sheet:
    """A list as read: which header named which field, the rows, what was passed over."""

    format: Format
    header_row: int
    columns: dict[str, str]  # field -> the header as written in the file
    ignored_columns: list[str]
    rows: list[Row]
    blank_rows: list[int] = field(default_factory=list)


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def printable(text: str) -> str:
    """``text`` with control characters shown escaped (``\\x00``): safe to store and show."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def normal_header(header: str) -> str:
    return re.sub("[\\s_\\-*\uff0a:\uff1a]", "", header).casefold()


_BY_HEADER = {normal_header(h): name for name, headers in COLUMNS.items() for h in headers}


def detect_format(data: bytes, filename: str | None = None) -> Format:
    """XLSX (a zip) or CSV (text); anything else is refused, saying what it looks like."""
    name = (filename or "").lower()
    if data.startswith(_XLSX_MAGIC):
        return "xlsx"
    if data.startswith(_OLE_MAGIC) or name.endswith(".xls"):
        raise UnsupportedFormat(
            "an Excel 97-2003 (.xls) file: save it as .xlsx (Excel Workbook) or CSV"
        )
    if name.endswith((".xlsx", ".xlsm")):
        raise UnsupportedFormat("the file is named .xlsx but is not an XLSX workbook (a zip)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFormat("UTF-16 text (Excel's Unicode Text): save it as CSV UTF-8 or XLSX")
    if b"\x00" in data[:8192]:
        raise UnsupportedFormat("a binary file: upload a CSV (UTF-8 or GB18030/GBK) or XLSX")
    return "csv"


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030 (a superset of GBK and GB2312)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise UnreadableList(
            f"the CSV is neither UTF-8 nor GB18030/GBK text (byte {exc.start} cannot be read)"
        ) from exc


def read_list(
    data: bytes,
    filename: str | None,
    *,
    max_rows: int,
    limits: ListLimits = ListLimits(),
) -> Sheet:
    """Read a CSV or XLSX list: find its header, map the columns, collect the rows."""
    if not data.strip():
        raise UnreadableList("the file is empty")
    kind = detect_format(data, filename)
    records = _xlsx_records(data, limits.workbook) if kind == "xlsx" else _csv_records(decode(data))
    return _sheet(kind, records, max_rows, limits.max_text_chars)


def _sheet(
    kind: Format, records: Iterator[tuple[int, list[str]]], max_rows: int, max_text: int
) -> Sheet:
    header_row, header = _find_header(records)
    columns: dict[str, str] = {}
    positions: dict[int, str] = {}
    ignored: list[str] = []
    for position, title in enumerate(header):
        name = _BY_HEADER.get(normal_header(title))
        if name is None:
            if title.strip():
                ignored.append(printable(title.strip())[:200])
            continue
        if name in columns:
            raise UnreadableList(
                f"columns {columns[name]!r} and {title.strip()!r} both mean {name!r}: keep one"
            )
        columns[name] = printable(title.strip())
        positions[position] = name
    rows: list[Row] = []
    blank: list[int] = []
    gap: list[int] = []  # blank rows since the last row: listed only if a row follows
    text = 0
    for number, values in records:
        if not any(v.strip() for v in values):
            if len(gap) < max_rows:  # trailing formatted-but-empty rows can be very many
                gap.append(number)
            continue
        blank.extend(gap)
        gap.clear()
        if len(rows) == max_rows or len(blank) > max_rows:
            raise TooManyRows(f"a list may have at most {max_rows} rows; split the file")
        cells = {
            positions[i]: value.strip()
            for i, value in enumerate(values)
            if i in positions and value.strip()
        }
        text += sum(map(len, cells.values()))
        if text > max_text:
            raise ListTooLarge(
                f"the rows' cells hold more than {max_text:,} characters together "
                "(MINQING_IMPORT_MAX_TEXT_CHARS)"
            )
        rows.append(Row(number, cells))
    if not rows:
        raise UnreadableList(f"no rows below the header (row {header_row})")
    return Sheet(kind, header_row, columns, ignored, rows, blank)


def _find_header(records: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]]:
    """The first row naming every required column, among the first rows of the file."""
    best: tuple[int, set[str]] = (0, set())
    for number, values in records:
        found = {_BY_HEADER.get(normal_header(v)) for v in values} - {None}
        named = {n for n in found if n is not None}
        if set(REQUIRED) <= named:
            return number, values
        if len(named) > len(best[1]):
            best = (number, named)
        if number >= HEADER_SEARCH_ROWS:
            break
    missing = [c for c in REQUIRED if c not in best[1]]
    where = f"the header (row {best[0]})" if best[0] else f"the first {HEADER_SEARCH_ROWS} rows"
    expected = "; ".join(f"{c}: {' / '.join(COLUMNS[c][:2])}" for c in missing)
    raise UnreadableList(f"{where} lacks the required columns {expected}")


def _csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    # The separator the first lines use most (a title line above the header has none).
    sample = text.split("\n", HEADER_SEARCH_ROWS)[:HEADER_SEARCH_ROWS]
    delimiter = max(_SEPARATORS, key=lambda d: sum(line.count(d) for line in sample))
    if not any(delimiter in line for line in sample):
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for values in reader:
            # The row number a spreadsheet shows: the line the record starts on.
            yield reader.line_num - _extra_lines(values), values[:MAX_COLUMNS]
    except csv.Error as exc:
        raise UnreadableList(f"CSV row {reader.line_num}: {exc}") from exc


def _extra_lines(values: Sequence[str]) -> int:
    """Line breaks inside quoted cells: the record started that many lines earlier."""
    return sum(v.count("\n") for v in values)


# What openpyxl raises on a malformed workbook: a bad zip, a missing part, XML that does not
# parse (ParseError is a SyntaxError), a shared string index out of range, a bad value.
_BROKEN = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    SyntaxError,
    OSError,
)


def _xlsx_records(data: bytes, limits: WorkbookLimits) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_workbook(archive, limits)
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except WorkbookTooLarge as exc:
        raise ListTooLarge(str(exc)) from exc
    except WorkbookForbidden as exc:
        raise UnreadableList(str(exc)) from exc
    except _BROKEN as exc:
        raise UnreadableList(f"not a readable XLSX workbook ({_reason(exc)})") from exc
    try:
        if not book.worksheets:
            raise UnreadableList("the workbook has no worksheet")
        sheet = book.worksheets[0]
        try:
            for number, values in enumerate(
                sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS), start=1
            ):
                # openpyxl fills every row missing between two rows with the same blanks.
                if values.count(None) == len(values):
                    yield number, []
                else:
                    yield number, [_cell_text(v) for v in values]
        except _BROKEN as exc:
            raise UnreadableList(f"the first worksheet cannot be read ({_reason(exc)})") from exc
    finally:
        book.close()


def _reason(exc: BaseException) -> str:
    return printable(f"{type(exc).__name__}: {exc}")[:300]


def _cell_text(value: Any) -> str:
    """A cell as text; a phone number typed as a number loses no digits and gains no ``.0``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)
