"""An XLSX checked before openpyxl reads it: a zip of XML parts, any of which may be hostile.

A workbook is a zip, so a few hundred KB can unzip to gigabytes; its parts are XML, so they
can declare entities (a "billion laughs", an external entity reading a local file) or hold
millions of elements in a few KB. openpyxl reads some parts whole and fills in every row
missing between two rows. So before it sees the file, every part is unzipped and streamed
once through expat (no tree is built) and counted against ``WorkbookLimits``; the first limit
passed refuses the file, naming that limit. The work of this check is bounded by the limits
themselves: it stops at the first one passed.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from xml.parsers import expat

# OOXML nests about ten levels deep (a chart's data cache the deepest).
MAX_XML_DEPTH = 100
# Excel's grid: openpyxl fills in every row missing up to a row's number.
MAX_ROW = 1_048_576
MAX_ROW_CELLS = 16_384  # column XFD
# Every cell is a few XML elements (<c>, its value, an inline string's text).
ELEMENTS_PER_CELL = 4
# One row with its cells, or one shared string with its runs of rich text: openpyxl holds it
# whole while reading it.
MAX_RECORD_ELEMENTS = 100_000
# Everything else (styles, formats, the workbook's structure, drawings): some parts are
# read whole into a tree. A large workbook has tens of thousands.
MAX_OTHER_ELEMENTS = 250_000
_CHUNK = 64 * 1024
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_ROW, _CELL, _STRING = f"{_MAIN} row", f"{_MAIN} c", f"{_MAIN} si"
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what Excel and others write
MiB = 1024 * 1024


class WorkbookTooLarge(ValueError):
    """Over a limit: the reason names it."""


class WorkbookForbidden(ValueError):
    """Content no spreadsheet writes: entities, absurd nesting, rows beyond Excel's grid."""


@dataclass(frozen=True)
class WorkbookLimits:
    """How much an XLSX may hold (settings ``import_max_unzipped_bytes`` and the next two)."""

    max_unzipped_bytes: int = 64 * MiB
    max_entries: int = 1_000
    max_cells: int = 500_000


def check_workbook(book: zipfile.ZipFile, limits: WorkbookLimits) -> None:
    """Refuse a workbook over any limit (``WorkbookTooLarge``) or with content no spreadsheet
    writes (``WorkbookForbidden``); every part is read once, as a stream."""
    entries = book.infolist()
    if len(entries) > limits.max_entries:
        raise WorkbookTooLarge(
            f"the workbook holds {len(entries):,} files (zip entries); at most "
            f"{limits.max_entries:,} are read (MINQING_IMPORT_MAX_ZIP_ENTRIES)"
        )
    unzipped = sum(e.file_size for e in entries)
    if unzipped > limits.max_unzipped_bytes:
        raise WorkbookTooLarge(
            f"the workbook unzips to {_mib(unzipped)}; at most {_mib(limits.max_unzipped_bytes)} "
            "(MINQING_IMPORT_MAX_UNZIPPED_BYTES)"
        )
    for entry in entries:
        if entry.flag_bits & 0x1:
            raise WorkbookForbidden(
                f"{_part(entry)} is encrypted: save the workbook without a password"
            )
        if entry.compress_type not in _METHODS:
            raise WorkbookForbidden(
                f"{_part(entry)} is compressed with zip method {entry.compress_type}; "
                "save the workbook again from Excel, WPS or LibreOffice"
            )
    counts = _Counts(limits)
    for entry in entries:
        _scan(book, entry, counts)


@dataclass
class _Counts:
    """What the parts hold so far, all parts together."""

    limits: WorkbookLimits
    elements: int = 0
    cells: int = 0
    strings: int = 0
    other: int = 0

    @property
    def max_elements(self) -> int:
        return ELEMENTS_PER_CELL * self.limits.max_cells


class _PartScan:
    """expat's callbacks for one part: depth, rows and cells checked as they stream by."""

    def __init__(self, part: str, counts: _Counts) -> None:
        self.part = part
        self.counts = counts
        self.depth = 0
        self.row = 0  # the row number openpyxl gives the current row
        self.row_cells = 0
        # The depth of the row or shared string being read (0: none), and its elements.
        self.record = 0
        self.in_row = False
        self.record_elements = 0

    def doctype(self, *_: object) -> None:
        raise WorkbookForbidden(
            f"{self.part} declares a DTD (<!DOCTYPE>), which no spreadsheet writes: XML entities "
            "(a 'billion laughs', an external entity) are not read"
        )

    def start(self, name: str, attributes: list[str]) -> None:
        self.depth += 1
        if self.depth > MAX_XML_DEPTH:
            raise WorkbookForbidden(f"{self.part} nests XML more than {MAX_XML_DEPTH} levels deep")
        counts = self.counts
        counts.elements += 1
        if counts.elements > counts.max_elements:
            raise WorkbookTooLarge(
                f"the workbook's XML holds more than {counts.max_elements:,} elements "
                f"({ELEMENTS_PER_CELL} per cell allowed by MINQING_IMPORT_MAX_CELLS)"
            )
        if self.record:
            self.record_elements += 1
            if self.record_elements > MAX_RECORD_ELEMENTS:
                raise WorkbookTooLarge(
                    f"a row or shared string of {self.part} holds more than "
                    f"{MAX_RECORD_ELEMENTS:,} XML elements"
                )
            # openpyxl reads every element directly in a row as a cell.
            if self.in_row and self.depth == self.record + 1:
                self._cell()
        elif name == _ROW:
            self._row(attributes)
        elif name == _STRING:
            counts.strings += 1
            if counts.strings > counts.limits.max_cells:
                raise WorkbookTooLarge(
                    f"the workbook's shared strings are more than {counts.limits.max_cells:,} "
                    "(MINQING_IMPORT_MAX_CELLS)"
                )
            self.record, self.in_row, self.record_elements = self.depth, False, 1
        else:
            counts.other += 1
            if counts.other > MAX_OTHER_ELEMENTS:
                raise WorkbookTooLarge(
                    f"the workbook holds more than {MAX_OTHER_ELEMENTS:,} XML elements besides "
                    f"its rows, cells and shared strings (the last was in {self.part})"
                )

    def end(self, _name: str) -> None:
        if self.depth == self.record:
            self.record = 0
        self.depth -= 1

    def _cell(self) -> None:
        self._count_cell()
        self.row_cells += 1
        if self.row_cells > MAX_ROW_CELLS:
            raise WorkbookForbidden(
                f"row {self.row:,} of {self.part} has more than {MAX_ROW_CELLS:,} cells "
                "(Excel's last column is XFD)"
            )

    def _row(self, attributes: list[str]) -> None:
        self._count_cell()  # a row costs openpyxl about what a cell does, even an empty one
        # As openpyxl numbers rows: the r attribute (an integer, possibly written as a
        # float), else one more than the row before.
        number = self.row + 1
        for key, value in zip(attributes[::2], attributes[1::2], strict=True):
            if key == "r":
                number = _row_number(value, number)
        if number > MAX_ROW:
            raise WorkbookForbidden(
                f"{self.part} has a row numbered {number:,}; Excel's last row is {MAX_ROW:,}"
            )
        self.row, self.row_cells = number, 0
        self.record, self.in_row, self.record_elements = self.depth, True, 1

    def _count_cell(self) -> None:
        counts = self.counts
        counts.cells += 1
        if counts.cells > counts.limits.max_cells:
            raise WorkbookTooLarge(
                f"the workbook holds more than {counts.limits.max_cells:,} cells and rows "
                "(MINQING_IMPORT_MAX_CELLS)"
            )


def _row_number(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return default  # openpyxl refuses it: an unreadable workbook
    return int(number) if number.is_integer() else default


def _scan(book: zipfile.ZipFile, entry: zipfile.ZipInfo, counts: _Counts) -> None:
    """Stream one part through expat. A part that is not XML (an image) or stops being
    well-formed is scanned up to there: openpyxl's parser (expat too) would stop there."""
    scan = _PartScan(_part(entry), counts)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.ordered_attributes = True
    parser.StartDoctypeDeclHandler = scan.doctype
    parser.StartElementHandler = scan.start
    parser.EndElementHandler = scan.end
    try:
        with book.open(entry) as part:
            while chunk := part.read(_CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError:
        return
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise WorkbookForbidden(f"{_part(entry)} cannot be unzipped ({exc})") from exc


def _part(entry: zipfile.ZipInfo) -> str:
    return f"the part {entry.filename[:100]!r}"


def _mib(size: int) -> str:
    return f"{size / MiB:,.1f} MiB"
