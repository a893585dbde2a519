"""The unit's workbench obeys the front door's Content-Security-Policy by construction (no
inline script, style or event handler; the script builds no markup from text), every label
has both languages, and its routes serve the page, its two files and the plan templates by
name (as plans.toml holds them), nothing else."""

from __future__ import annotations

import re
import tomllib

from fastapi import FastAPI
from fastapi.testclient import TestClient

from minqing.services.projection.workbench import FILES, STATIC, install, templates
from minqing.shared.service.settings import REFERENCE_DIR
from tests.intake.unit.test_resident_pages_static import _Inline


def test_the_page_has_no_inline_script_style_or_handler_and_loads_only_its_own_files() -> None:
    parser = _Inline()
    parser.feed((STATIC / "workbench.html").read_text())
    assert parser.found == []
    assert sorted(parser.loads) == ["/work/workbench.css", "/work/workbench.js"]
    assert {load.rsplit("/", 1)[1] for load in parser.loads} == set(FILES)


def test_the_script_builds_no_markup_from_text() -> None:
    script = (STATIC / "workbench.js").read_text()
    for risky in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML"):
        assert risky not in script, risky


def test_photos_are_taken_with_the_camera_made_smaller_and_shown_from_data_urls() -> None:
    script = (STATIC / "workbench.js").read_text()
    for wanted in (
        'type: "file"',
        'accept: "image/*"',
        'capture: "environment"',
        "multiple: true",
        "const MAX_PHOTOS = 6;",
        "const LONG_SIDE = 1600;",
        'toBlob(resolve, "image/jpeg", QUALITY)',
        'fetch("/api/v1/photos"',
        "api(`/api/v1/issues/${id}/photos`)",
        "`/api/v1/photos/${encodeURIComponent(photo.photo_id)}`",
    ):
        assert wanted in script, wanted
    # thumbnails are data: URLs: the front door's img-src 'self' data: refuses blob: URLs
    assert "createObjectURL" not in script
    assert "photos_none" not in script  # "uploading photos is not supported yet" is gone


def _labels(script: str, language: str) -> set[str]:
    block = script.split(f"\n  {language}: {{\n", 1)[1].split("\n  },\n", 1)[0]
    return set(re.findall(r"(?:^\s+|, )([a-z_]+): (?=[\"'(])", block, re.MULTILINE))


def test_every_label_is_in_both_languages_and_the_page_names_only_known_ones() -> None:
    script = (STATIC / "workbench.js").read_text()
    zh, en = _labels(script, "zh"), _labels(script, "en")
    assert zh == en, zh ^ en
    parser = _Inline()
    parser.feed((STATIC / "workbench.html").read_text())
    assert parser.keys and set(parser.keys) <= zh, set(parser.keys) - zh


def test_the_plan_templates_are_plans_toml_by_name_in_both_languages() -> None:
    shipped = tomllib.loads((REFERENCE_DIR / "plans.toml").read_text())["plans"]
    found = {t.code: t for t in templates(REFERENCE_DIR)}
    assert set(found) == set(shipped)
    road = found["road_repair"]
    assert road.name.model_dump() == {"zh": "道路修复", "en": "Repairing a road"}
    assert [m.working_days for m in road.milestones] == [
        m["working_days"] for m in shipped["road_repair"]["milestones"]
    ]
    assert road.milestones[0].title.zh == "勘查与预算"


def test_the_routes_serve_the_page_its_two_files_and_nothing_else() -> None:
    app = FastAPI()
    install(app, REFERENCE_DIR)
    client = TestClient(app)
    page = client.get("/work")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/work/workbench.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/work/workbench.css").headers["content-type"].startswith("text/css")
    assert client.get("/work/workbench.html").status_code == 404
    assert client.get("/work/..%2F__init__.py").status_code == 404
    names = [t["name"]["zh"] for t in client.get("/api/v1/plan-templates").json()]
    assert "危桥拆建" in names
