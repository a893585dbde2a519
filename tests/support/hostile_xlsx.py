"""Hostile XLSX workbooks, built by hand with zipfile: what an attacker would upload as a list.

Each is a valid zip with the parts openpyxl looks for; only the part under attack differs
from an ordinary one-row list.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from itertools import pairwise

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.worksheet+xml"/>'
    "{shared}"
    "</Types>"
)
SHARED_OVERRIDE = (
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_CT}.sharedStrings+xml"/>'
)
ROOT_RELS = (
    f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG_REL}">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/officeDocument"/></Relationships>'
)
WORKBOOK = (
    f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{REL}">'
    '<sheets><sheet name="list" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG_REL}">'
    f'<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="{REL}/worksheet"/>'
    "{shared}</Relationships>"
)
SHARED_REL = f'<Relationship Id="rId2" Target="sharedStrings.xml" Type="{REL}/sharedStrings"/>'

HEADER = ("title", "description", "category", "village")
ROW = ("路灯不亮", "晚上一片黑", "路灯", "三岐村")


def inline_row(number: int, values: Iterable[str]) -> str:
    cells = "".join(
        f'<c r="{chr(65 + i)}{number}" t="inlineStr"><is><t>{v}</t></is></c>'
        for i, v in enumerate(values)
    )
    return f'<row r="{number}">{cells}</row>'


def sheet_xml(rows: str | Iterable[str | bytes], *, prolog: str = "") -> Iterable[bytes]:
    """A worksheet's XML in chunks (so that a huge one is never held whole)."""
    head = f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<worksheet xmlns="{MAIN}">'
    yield f"{head}<sheetData>".encode()
    for chunk in [rows] if isinstance(rows, str) else rows:
        yield chunk.encode() if isinstance(chunk, str) else chunk
    yield b"</sheetData></worksheet>"


ORDINARY_ROWS = inline_row(1, HEADER) + inline_row(2, ROW)


def workbook(
    sheet: Iterable[bytes] | None = None,
    *,
    shared_strings: Iterable[bytes] | None = None,
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """An XLSX with the given first worksheet (default: a header and one good row)."""
    out = io.BytesIO()
    shared = shared_strings is not None
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(
            "[Content_Types].xml", CONTENT_TYPES.format(shared=SHARED_OVERRIDE if shared else "")
        )
        zf.writestr("_rels/.rels", ROOT_RELS)
        zf.writestr("xl/workbook.xml", WORKBOOK)
        zf.writestr(
            "xl/_rels/workbook.xml.rels", WORKBOOK_RELS.format(shared=SHARED_REL if shared else "")
        )
        _write(zf, "xl/worksheets/sheet1.xml", sheet or sheet_xml(ORDINARY_ROWS))
        if shared_strings is not None:
            _write(zf, "xl/sharedStrings.xml", shared_strings)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out.getvalue()


def _write(zf: zipfile.ZipFile, name: str, chunks: Iterable[bytes]) -> None:
    with zf.open(name, "w", force_zip64=True) as fh:
        for chunk in chunks:
            fh.write(chunk)


def _shared(items: str, *, prolog: str = "") -> Iterable[bytes]:
    yield (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<sst xmlns="{MAIN}">{items}</sst>'
    ).encode()


def _shared_sheet() -> Iterable[bytes]:
    cells = "".join(f'<c r="{chr(65 + i)}1" t="s"><v>0</v></c>' for i in range(4))
    return sheet_xml(f'<row r="1">{cells}</row>' + inline_row(2, ROW))


def billion_laughs() -> bytes:
    """Entities nested ten deep: expanded, a few hundred bytes would become gigabytes."""
    names = ["lol", *(f"lol{i}" for i in range(1, 10))]
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY {name} "{f"&{previous};" * 10}">' for previous, name in pairwise(names)
    )
    prolog = f"<!DOCTYPE sst [{entities}]>"
    return workbook(
        _shared_sheet(), shared_strings=_shared("<si><t>&lol9;</t></si>", prolog=prolog)
    )


def external_entity(target: str = "file:///etc/passwd") -> bytes:
    """XXE: a shared string whose text would be a local file's content."""
    prolog = f'<!DOCTYPE sst [<!ENTITY xxe SYSTEM "{target}">]>'
    return workbook(_shared_sheet(), shared_strings=_shared("<si><t>&xxe;</t></si>", prolog=prolog))


def entity_in_content_types() -> bytes:
    """The package's own index declaring an entity: the first part anyone reads."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook())) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "[Content_Types].xml":
                declaration, _, rest = data.partition(b"?>")
                data = declaration + b'?><!DOCTYPE Types [<!ENTITY e "e">]>' + rest
            target.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def zip_bomb(megabytes: int = 400) -> bytes:
    """A sheet of ``megabytes`` MB of highly compressible rows of cells, in a few hundred KB."""
    row = b'<row><c t="inlineStr"><is><t>a</t></is></c><c><v>1</v></c></row>'
    per_mb = (1 << 20) // len(row)
    chunk = row * per_mb
    return workbook(sheet_xml([inline_row(1, HEADER), *(chunk for _ in range(megabytes))]))


def shared_strings_bomb(megabytes: int = 400) -> bytes:
    """A shared strings table of millions of tiny strings: openpyxl keeps every one in a list."""
    item = b"<si><t>a</t></si>" * ((1 << 20) // 17)

    def items() -> Iterable[bytes]:
        yield f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN}">'.encode()
        for _ in range(megabytes):
            yield item
        yield b"</sst>"

    return workbook(_shared_sheet(), shared_strings=items())


def far_rows(last: int = 1_048_576) -> bytes:
    """A few tiny rows, the last one at the bottom of the sheet: every row between is filled."""
    return workbook(sheet_xml(ORDINARY_ROWS + f'<row r="{last}"><c r="A{last}"/></row>'))


def many_cells(count: int = 5_000_000) -> bytes:
    """Millions of empty cells in one row: each becomes a dict before the row is trimmed."""
    return workbook(sheet_xml([inline_row(1, HEADER), b"<row>", b"<c/>" * count, b"</row>"]))


def many_entries(count: int = 20_000) -> bytes:
    """A workbook with tens of thousands of (empty) files in its zip."""
    return workbook(extra={f"xl/media/image{i}.bin": b"" for i in range(count)})


def deep_nesting(depth: int = 1_000_000) -> bytes:
    """An element nested a million deep inside the sheet: a tree openpyxl never clears."""
    return workbook(sheet_xml([ORDINARY_ROWS, b"<x>" * depth, b"</x>" * depth]))


def big_styles(count: int = 3_000_000) -> bytes:
    """A styles part of millions of tiny elements, read whole into a tree."""
    body = (
        f'<styleSheet xmlns="{MAIN}"><numFmts>'.encode()
        + b"<a/>" * count
        + b"</numFmts></styleSheet>"
    )
    return workbook(extra={"xl/styles.xml": body})


def row_beyond_the_grid(number: int = 10**12) -> bytes:
    """A row numbered past Excel's last: openpyxl would fill in every row up to it."""
    return workbook(sheet_xml(ORDINARY_ROWS + f'<row r="{number}"><c t="inlineStr"/></row>'))


def shared_text_bomb(chars: int = 1_000_000, rows: int = 20) -> bytes:
    """One long shared string shown by every cell of many rows: the rows' text outgrows
    the file many times over."""
    header = "".join(f'<c r="{chr(65 + i)}1" t="s"><v>{i}</v></c>' for i in range(4))
    body = f'<row r="1">{header}</row>' + "".join(
        f'<row r="{n}">'
        + "".join(f'<c r="{chr(65 + i)}{n}" t="s"><v>4</v></c>' for i in range(4))
        + "</row>"
        for n in range(2, rows + 2)
    )
    strings = "".join(f"<si><t>{h}</t></si>" for h in HEADER) + f"<si><t>{'路' * chars}</t></si>"
    return workbook(sheet_xml(body), shared_strings=_shared(strings))


def bzip2_part() -> bytes:
    """A workbook whose sheet is compressed with a method no spreadsheet writes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook())) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            method = (
                zipfile.ZIP_BZIP2 if info.filename.endswith("sheet1.xml") else info.compress_type
            )
            target.writestr(info.filename, source.read(info), compress_type=method)
    return out.getvalue()


def shared_index_out_of_range() -> bytes:
    """A cell pointing at a shared string that does not exist."""
    return workbook(sheet_xml('<row r="1"><c r="A1" t="s"><v>7</v></c></row>'))


HOSTILE = {
    "billion_laughs": billion_laughs,
    "external_entity": external_entity,
    "entity_in_content_types": entity_in_content_types,
    "zip_bomb": zip_bomb,
    "shared_strings_bomb": shared_strings_bomb,
    "far_rows": far_rows,
    "many_cells": many_cells,
    "many_entries": many_entries,
    "deep_nesting": deep_nesting,
    "big_styles": big_styles,
    "row_beyond_the_grid": row_beyond_the_grid,
    "shared_text_bomb": shared_text_bomb,
    "bzip2_part": bzip2_part,
    "shared_index_out_of_range": shared_index_out_of_range,
}
