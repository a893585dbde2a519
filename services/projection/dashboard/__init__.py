"""The supervisors' desk at ``/``: a static page (HTML, CSS, plain JavaScript; no build step)
over the projection's JSON API, in Chinese by default with English to switch to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from minqing.services.projection.sentences import Names

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI, names: Names) -> None:
    router = APIRouter(tags=["desk"])

    @router.get("/", include_in_schema=False)
    async def desk() -> FileResponse:
        """The desk: the list, a matter's timeline, the overdue board, the statistics."""
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @router.get("/api/v1/names")
    async def get_names() -> dict[str, Any]:
        """Every code's name in Chinese and English, by kind (villages, units...)."""
        return names.all()

    app.include_router(router)
    app.mount("/dashboard", StaticFiles(directory=STATIC), name="dashboard")
