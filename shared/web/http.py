"""HTTP parts every service shares: health, readiness, contract, dead letters, outages."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import JSONResponse, Response

from minqing.shared.domain.text import mask_personal
from minqing.shared.identity.web import CallerDep
from minqing.shared.service.metrics import CONTENT_TYPE
from minqing.shared.service.settings import Settings
from minqing.shared.web import edge

log = logging.getLogger(__name__)


class Operated(Protocol):
    """What the shared routes ask of a running service."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    async def ready(self) -> tuple[bool, dict[str, str]]: ...

    async def dead_letters(self, limit: int, status: str | None) -> list[dict[str, Any]]: ...

    def contract_json(self) -> bytes: ...

    async def metrics_text(self) -> bytes: ...


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

    @router.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: events consumed (by consumer and type) and published, each
        batch's time, consumer lag, the outbox's backlog and oldest row, dead letters, HTTP
        requests by route and status, the database pool (``shared/service/metrics.py``)."""
        return Response(await runtime.metrics_text(), media_type=CONTENT_TYPE)

    @router.get(
        "/asyncapi.json",
        tags=["contract"],
        response_class=Response,
        responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
    )
    async def asyncapi_document() -> Response:
        """This service's part of the event contract (AsyncAPI 3): the canonical stream's
        events, what this service consumes and the channels it owns; the whole system's
        document is ``minqing asyncapi``."""
        return Response(runtime.contract_json(), media_type="application/json")

    @router.get("/api/v1/dead-letters", tags=["operations"])
    async def dead_letters(
        caller: CallerDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        status: Literal["dead", "waiting", "resubmitted"] | None = None,
        reveal: Annotated[
            bool, Query(description="Show the raw message, unmasked (logged with who asked)")
        ] = False,
    ) -> list[dict[str, Any]]:
        """Messages this service gave up on (``dead``), that wait for a newer consumer
        (``waiting``) or that were fixed and sent again (``resubmitted``), newest first, with
        the reason (and, for ingress messages, its ``reason_code``), the subject and the
        message: its phone numbers, long digit runs and names masked (``payload_base64``
        left out), unless ``reveal=true``, which shows it raw and is logged."""
        letters = await runtime.dead_letters(limit, status)
        if reveal:
            # A log line, not an event: a dead letter may belong to no matter (it may not even
            # parse), and events are facts of a matter on its audit trail. The operator's
            # principal and the letters' ids are enough to answer "who saw what, when".
            log.warning(
                "dead letters revealed unmasked to %s: ids %s",
                caller.id,
                [letter.get("id") for letter in letters],
            )
            return letters
        return [_masked(letter) for letter in letters]

    return router


def _masked(letter: dict[str, Any]) -> dict[str, Any]:
    """A dead letter as shown by default: the payload and the error masked, no raw bytes."""
    shown = {**letter, "payload_base64": None}
    for key in ("payload", "reason"):
        if isinstance(shown.get(key), str):
            shown[key] = mask_personal(shown[key])
    if isinstance(headers := shown.get("headers"), dict):
        shown["headers"] = {
            k: mask_personal(v) if isinstance(v, str) else v for k, v in headers.items()
        }
    return shown
