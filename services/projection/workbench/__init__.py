"""The unit's workbench at ``/work``: a phone-first page (HTML, CSS, plain JavaScript; no
build step) for a unit's staff and for line staff, over the services' JSON APIs through the
front door. Chinese by default, English to switch to; under the front door's
Content-Security-Policy (no inline script or style).

Besides the page and its two files, the plan templates by name
(``GET /api/v1/plan-templates``): the page offers them when a unit sets a matter's plan."""

from __future__ import annotations

import tomllib
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, status
from fastapi.responses import FileResponse
from pydantic import BaseModel

STATIC = Path(__file__).parent / "static"
HTML = "text/html; charset=utf-8"
# The page's own files, by name: nothing else under /work/.
FILES = {"workbench.js": "text/javascript; charset=utf-8", "workbench.css": "text/css"}
NO_STORE = {"Cache-Control": "no-store"}


class Words(BaseModel):
    """A name in both languages."""

    zh: str
    en: str


class StageOut(BaseModel):
    title: Words
    working_days: int  # after the matter was assigned, on the working-day calendar
    responsible: str  # "unit" or "village_secretary"


class TemplateOut(BaseModel):
    code: str
    name: Words
    milestones: list[StageOut]


def words(name: str) -> Words:
    """``"危桥拆建 Rebuilding a dangerous bridge"`` -> its Chinese and its English."""
    first, _, rest = name.partition(" ")
    if rest and not first.isascii():
        return Words(zh=first, en=rest)
    return Words(zh=name, en=name)


def templates(reference_dir: Path) -> list[TemplateOut]:
    """The plan templates of ``plans.toml`` (followup checks the file at its start)."""
    path = reference_dir / "plans.toml"
    if not path.exists():
        return []
    found = tomllib.loads(path.read_text(encoding="utf-8")).get("plans", {})
    return [
        TemplateOut(
            code=code,
            name=words(str(plan["name"])),
            milestones=[
                StageOut(
                    title=words(str(m["title"])),
                    working_days=int(m["working_days"]),
                    responsible=str(m["responsible"]),
                )
                for m in plan.get("milestones", [])
            ],
        )
        for code, plan in found.items()
    ]


def install(app: FastAPI, reference_dir: Path) -> None:
    router = APIRouter(tags=["workbench"])
    known = templates(reference_dir)

    @router.get("/work", response_class=FileResponse, responses={200: {"content": {HTML: {}}}})
    async def workbench() -> FileResponse:
        """The unit's workbench: its matters by urgency, a matter's trail and what the unit
        does with it; for line staff, their look-backs due."""
        return FileResponse(STATIC / "workbench.html", media_type=HTML, headers=NO_STORE)

    @router.get(
        "/work/{name}",
        response_class=FileResponse,
        responses={
            200: {"content": {kind.split(";")[0]: {} for kind in FILES.values()}},
            404: {"description": "No such file"},
        },
    )
    async def workbench_file(name: str) -> FileResponse:
        """The workbench's script and stylesheet."""
        if name not in FILES:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
        return FileResponse(STATIC / name, media_type=FILES[name])

    @router.get("/api/v1/plan-templates")
    async def plan_templates() -> list[TemplateOut]:
        """The plan templates a unit may set a matter's plan from, by name."""
        return known

    app.include_router(router)
