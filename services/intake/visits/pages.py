"""The visit page (``/visit/``): grid workers and cadres on door-to-door visits record what
they find from a phone, with or without signal. Static HTML, CSS and plain JavaScript under
the front door's Content-Security-Policy (no inline script or style), and a service worker
(``/visit/sw.js``) that keeps the page's own files for when the
signal is gone. What is recorded waits in the browser (localStorage) with its idempotency
key and goes to intake's report API (``POST /api/v1/reports``) when the signal returns.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"
HTML = "text/html; charset=utf-8"
# The page's own files, by name: nothing else under /visit/.
FILES = {
    "visit.js": "text/javascript; charset=utf-8",
    "visit.css": "text/css",
    "sw.js": "text/javascript; charset=utf-8",
}
# The service worker decides what is kept (it checks the network first); the browser's own
# cache must not keep an old copy of the worker script itself.
NO_CACHE = {"Cache-Control": "no-cache"}
# The worker's scope is ``/visit`` (the page is at ``/visit/`` and ``/visit``), one level
# above the folder it is served from: the browser allows that only when the script says so.
WORKER = {**NO_CACHE, "Service-Worker-Allowed": "/visit"}

router = APIRouter(tags=["visit page"])


@router.get("/visit", response_class=FileResponse, responses={200: {"content": {HTML: {}}}})
async def visit_page() -> FileResponse:
    """The visit page (``/visit/`` and ``/visit``: the edge serves a path with a trailing
    slash as the path without it): record a matter or a visit that found nothing, offline
    too."""
    return FileResponse(STATIC / "index.html", media_type=HTML, headers=NO_CACHE)


@router.get(
    "/visit/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {kind.split(";")[0]: {} for kind in FILES.values()}},
        404: {"description": "No such file"},
    },
)
async def visit_file(name: str) -> FileResponse:
    """The page's script, stylesheet and service worker."""
    if name not in FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    headers = WORKER if name == "sw.js" else NO_CACHE
    return FileResponse(STATIC / name, media_type=FILES[name], headers=headers)
