"""The visit page obeys the front door's Content-Security-Policy by construction (no inline
script, style or event handler; the script builds no markup from text; a photo is shown and
sent from a data: URL, never a blob: one, which ``img-src 'self' data:`` refuses), loads only
its own files, every label it switches has both languages, and a matter's photo is made
smaller on the phone (at most 1280 px, JPEG quality 0.7) before it waits in the list."""

from __future__ import annotations

import re

from minqing.services.intake.visits.pages import FILES, STATIC
from tests.intake.unit.test_resident_pages_static import _Inline

SCRIPT = (STATIC / "visit.js").read_text()
PAGE = (STATIC / "index.html").read_text()


def _labels(language: str) -> set[str]:
    block = SCRIPT.split(f"\n  {language}: {{\n", 1)[1].split("\n  },\n", 1)[0]
    return set(re.findall(r"(?:^\s+|, )([a-z_]+): (?=[\"'(`])", block, re.MULTILINE))


def test_the_page_has_no_inline_script_style_or_handler_and_loads_only_its_own_files() -> None:
    parser = _Inline()
    parser.feed(PAGE)
    assert parser.found == []
    assert sorted(parser.loads) == ["/visit/visit.css", "/visit/visit.js"]
    assert {load.rsplit("/", 1)[1] for load in parser.loads} <= set(FILES)


def test_the_scripts_build_no_markup_from_text_and_use_no_blob_urls() -> None:
    for name in ("visit.js", "sw.js"):
        script = (STATIC / name).read_text()
        for risky in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML"):
            assert risky not in script, (name, risky)
        assert "createObjectURL" not in script, name  # img-src 'self' data: refuses blob:
    # a data: URL's bytes are read with atob, not fetched (connect-src 'self')
    assert "fetch(item.photo" not in SCRIPT and "atob(" in SCRIPT


def test_every_label_is_in_both_languages_and_the_page_names_only_known_ones() -> None:
    zh, en = _labels("zh"), _labels("en")
    assert zh == en, zh ^ en
    parser = _Inline()
    parser.feed(PAGE)
    assert parser.keys and set(parser.keys) <= zh, set(parser.keys) - zh


def test_a_matter_may_carry_one_photo_made_smaller_on_the_phone() -> None:
    camera = re.search(r'<input id="photo"[^>]*>', PAGE)
    assert camera, "no camera input"
    assert 'type="file"' in camera[0] and 'accept="image/*"' in camera[0]
    assert 'capture="environment"' in camera[0] and "multiple" not in camera[0]
    assert "const PHOTO_SIDE = 1280;" in SCRIPT and "const PHOTO_QUALITY = 0.7;" in SCRIPT
    assert 'toDataURL("image/jpeg", PHOTO_QUALITY)' in SCRIPT
    # the photo goes first, then the report naming it, with the record's key
    upload = SCRIPT.index('fetch("/api/v1/photos"')
    assert upload < SCRIPT.index("photos: [item.photoRef]")
    assert '"Idempotency-Key": item.key' in SCRIPT
