"""Every table in README.md and docs/ has the same number of columns in every row (a row
missing a cell shifts the rest of it under the wrong heading)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def cells(row: str) -> int:
    """Cell separators in a table row: pipes outside code spans, and not escaped."""
    row = re.sub(r"`[^`]*`", "code", row)
    return len(re.findall(r"(?<!\\)\|", row))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_row_of_a_table_has_its_columns(page: Path) -> None:
    width = None
    fenced = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("|"):
            width = None
            continue
        if width is None:
            width = cells(line)
        assert cells(line) == width, f"{page.name}:{number}: {cells(line)} cells, not {width}"
