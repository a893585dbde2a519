"""HTTP parts every service shares: health, readiness, contract, dead letters, outages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from shared import edge
from shared.contract import asyncapi

if TYPE_CHECKING:
    from shared.runtime import Runtime


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add the shared routes, and the edge: body limit, 4xx for client errors, 503 outages."""
    app.include_router(health_router(runtime))
    edge.install(app, runtime.settings)


def health_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok", "service": runtime.name}

    @router.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Its database and NATS are reachable and its consumer runs; else 503 with why."""
        checks = await runtime.ready()
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ok else "not ready", "service": runtime.name, **checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/asyncapi.json", tags=["contract"])
    async def asyncapi_document() -> dict[str, Any]:
        """The event contract of the whole system (AsyncAPI 3): channels, schemas, consumers."""
        return asyncapi(runtime.settings)

    @router.get("/api/v1/dead-letters", tags=["operations"])
    async def dead_letters(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        """Messages this service gave up on, newest first, with the reason."""
        table = runtime.plumbing.dead_letters
        async with runtime.sessions() as session:
            rows = await session.execute(select(table).order_by(table.c.id.desc()).limit(limit))
        return [row._asdict() for row in rows]

    return router
