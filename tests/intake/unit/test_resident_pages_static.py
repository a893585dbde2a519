"""The residents' pages obey the front door's Content-Security-Policy by construction (no
inline script, style or event handler; the script builds no markup from text), carry the
Open311 page key intake knows, and every label they switch has both languages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from minqing.services.intake.channels.open311.keys import PAGE_KEY
from minqing.services.intake.residents.pages import FILES, STATIC, parts

PAGES = ("report.html", "follow.html", "feedback.html")


class _Inline(HTMLParser):
    """What the policy (script-src 'self', style-src 'self') would refuse, and the page's
    own files it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.loads: list[str] = []
        self.keys: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            if not names.get("src"):
                self.found.append("inline <script>")
            self.loads.append(names.get("src") or "")
        if tag == "link":
            self.loads.append(names.get("href") or "")
        if tag == "style":
            self.found.append("inline <style>")
        self.found += [f"{tag} {name}=" for name in names if name.startswith("on")]
        if "style" in names:
            self.found.append(f"{tag} style=")
        if any((v or "").strip().lower().startswith("javascript:") for v in names.values()):
            self.found.append(f"{tag} javascript: URL")
        if "data-t" in names:
            self.keys.append(names["data-t"] or "")


@pytest.mark.parametrize("name", PAGES)
def test_a_page_has_no_inline_script_style_or_handler_and_loads_only_its_own_files(
    name: str,
) -> None:
    parser = _Inline()
    parser.feed((STATIC / name).read_text())
    assert parser.found == []
    assert sorted(parser.loads) == ["/residents/residents.css", "/residents/residents.js"]
    assert {load.rsplit("/", 1)[1] for load in parser.loads} == set(FILES)


def test_the_script_builds_no_markup_and_posts_with_the_page_key_intake_knows() -> None:
    script = (STATIC / "residents.js").read_text()
    for risky in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML"):
        assert risky not in script, risky
    assert f'const PAGE_KEY = "{PAGE_KEY}";' in script


def test_every_label_the_pages_name_is_in_both_languages() -> None:
    script = (STATIC / "residents.js").read_text()
    zh = script.split("\n  zh: {\n", 1)[1].split("\n  },\n", 1)[0]
    en = script.split("\n  en: {\n", 1)[1].split("\n  },\n", 1)[0]
    for page in PAGES:
        parser = _Inline()
        parser.feed((STATIC / page).read_text())
        assert parser.keys
        for label in parser.keys:
            said = re.compile(rf"(^|\s){label}: ", re.MULTILINE)
            assert said.search(zh) and said.search(en), (page, label)


def test_names_of_the_reference_data_split_into_chinese_and_english() -> None:
    assert parts("三岐村 Sanqi Village").model_dump() == {"zh": "三岐村", "en": "Sanqi Village"}
    assert parts("Shihu").model_dump() == {"zh": "Shihu", "en": "Shihu"}
