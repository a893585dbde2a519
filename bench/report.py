"""The result table: printed to stdout, and written between markers in README.md on request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
HEADER = ("figure", "target", "measured", "raw", "ratio", "met?", "date")


@dataclass(frozen=True)
class Row:
    figure: str
    target: str
    measured: str
    raw: str = "—"
    ratio: str = "—"
    met: bool | None = None
    date: str = ""

    def cells(self) -> tuple[str, ...]:
        met = "n/a" if self.met is None else ("yes" if self.met else "NO")
        return (self.figure, self.target, self.measured, self.raw, self.ratio, met, self.date)


def rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}"


def percent(measured: float, raw: float) -> str:
    return f"{100 * measured / raw:.0f}%" if raw > 0 else "—"


def text_table(rows: list[Row]) -> str:
    cells = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def write_readme(readme: Path, rows: list[Row], context: str) -> None:
    """Replace what lies between the bench markers with the table and its context line."""
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    block = f"{START}\n{context}\n\n{markdown_table(rows)}\n{END}"
    readme.write_text(pattern.sub(lambda _: block, text, count=1))
