"""HTTP parts every service shares: health, readiness, contract, dead letters, outages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import JSONResponse

from minqing.shared.service.settings import Settings
from minqing.shared.web import edge


class Operated(Protocol):
    """What the shared routes ask of a running service."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    async def ready(self) -> tuple[bool, dict[str, str]]: ...

    async def dead_letters(self, limit: int, status: str | None) -> list[dict[str, Any]]: ...

    def contract(self) -> dict[str, Any]: ...


def install(app: FastAPI, runtime: Operated, upload_paths: Sequence[str] = ()) -> None:
    """Add the shared routes, and the edge: body limit, 4xx for client errors, 503 outages."""
    app.include_router(health_router(runtime))
    edge.install(app, runtime.settings, upload_paths)


def health_router(runtime: Operated) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok", "service": runtime.name}

    @router.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Whether it can do its job: database, NATS, each consumer attached and keeping up."""
        ok, checks = await runtime.ready()
        body = {"status": "ready" if ok else "not ready", "service": runtime.name, **checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/asyncapi.json", tags=["contract"])
    async def asyncapi_document() -> dict[str, Any]:
        """This service's part of the event contract (AsyncAPI 3): the canonical stream's
        events, what this service consumes and the channels it owns; the whole system's
        document is ``minqing asyncapi``."""
        return runtime.contract()

    @router.get("/api/v1/dead-letters", tags=["operations"])
    async def dead_letters(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        status: Literal["dead", "waiting", "resubmitted"] | None = None,
    ) -> list[dict[str, Any]]:
        """Messages this service gave up on (``dead``), that wait for a newer consumer
        (``waiting``) or that were fixed and sent again (``resubmitted``), newest first, with
        the reason (and, for ingress messages, its ``reason_code``), the subject and the raw
        message."""
        return await runtime.dead_letters(limit, status)

    return router
