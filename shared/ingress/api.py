"""HTTP for the NATS channel: an ingress message's outcome, re-submitting a dead letter, and
the Prometheus metrics (served with the service's own at ``GET /metrics``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from sqlalchemy import Table

from minqing.shared.ingress import outcomes
from minqing.shared.ingress.channel import IngressChannel
from minqing.shared.ingress.resubmit import LetterNotFound, NotResubmittable, resubmit
from minqing.shared.service.runtime import Runtime

SourceCode = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$")]


def build_ingress_router(rt: Runtime, channel: IngressChannel, outcomes_table: Table) -> APIRouter:
    """Outcomes and re-submission of the service's ingress consumer ``channel``."""
    router = APIRouter()
    plumbing = rt.plumbing

    @router.get(
        "/api/v1/ingress/{source}/{ingress_id:path}",
        tags=["ingress"],
        responses={404: {"description": "No message with this id from this source (yet)"}},
    )
    async def get_outcome(source: SourceCode, ingress_id: str) -> dict[str, Any]:
        """The outcome of a department system's message, by its CloudEvent id: as published
        on the outcomes stream."""
        async with rt.sessions() as session:
            found = await outcomes.find(session, outcomes_table, source, ingress_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no outcome for this message (yet)")
        return found

    @router.post(
        "/api/v1/dead-letters/{letter_id}/resubmit",
        tags=["operations"],
        status_code=status.HTTP_202_ACCEPTED,
        responses={
            404: {"description": "No such dead letter"},
            409: {"description": "Not a dead ingress message, or already re-submitted"},
        },
    )
    async def post_resubmit(letter_id: int, request: Request) -> dict[str, object]:
        """Publish a dead ingress message again on the subject it came on: as it was, or
        with the request body (the corrected message) in its place. Its outcome follows on
        the outcomes stream."""
        body = await request.body()
        try:
            return await resubmit(
                rt.sessions,
                rt.outbox,
                plumbing,
                channel.consumer,
                rt.settings.ingress_stream_name,
                letter_id,
                body or None,
            )
        except LetterNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except NotResubmittable as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc

    return router
