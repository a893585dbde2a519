"""The desk obeys the front door's Content-Security-Policy by construction (no inline
script, style or event handler; the script builds no markup from text), loads only its own
files, and every label it switches (the report view's too) has both languages."""

from __future__ import annotations

import re

from minqing.services.projection.dashboard import STATIC
from tests.intake.unit.test_resident_pages_static import _Inline

SCRIPT = (STATIC / "app.js").read_text()
PAGE = (STATIC / "index.html").read_text()


def _labels(language: str) -> set[str]:
    block = SCRIPT.split(f"\n  {language}: {{\n", 1)[1].split("\n  },\n", 1)[0]
    label = r"(?:^\s+|, )\"?([a-z_][a-z0-9_-]*)\"?: (?=[\"'(`])"
    return set(re.findall(label, block, re.MULTILINE))


def test_the_desk_has_no_inline_script_style_or_handler_and_loads_only_its_own_files() -> None:
    parser = _Inline()
    parser.feed(PAGE)
    assert parser.found == []
    assert sorted(parser.loads) == ["/dashboard/app.js", "/dashboard/style.css"]


def test_the_script_builds_no_markup_from_text() -> None:
    for risky in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML"):
        assert risky not in SCRIPT, risky


def test_every_label_is_in_both_languages_and_the_page_names_only_known_ones() -> None:
    zh, en = _labels("zh"), _labels("en")
    assert zh == en, zh ^ en
    parser = _Inline()
    parser.feed(PAGE)
    assert parser.keys and set(parser.keys) <= zh, set(parser.keys) - zh


def test_the_report_view_links_the_printable_page_and_the_workbook_of_the_period() -> None:
    assert re.search(r'data-tab="report"[^>]*data-needs="GET /api/v1/report"', PAGE)
    for wanted in ('query.set("format", "html")', 'query.set("format", "xlsx")'):
        assert wanted in SCRIPT, wanted
    assert "`/api/v1/visits/summary?${days}`" in SCRIPT
