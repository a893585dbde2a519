"""Residents over HTTP: invite supervisors and record their checks; see a matter's
replies; take a reporter's feedback (by the token in the reply); list re-visits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake.channels.http.api import Phone
from minqing.services.intake.residents import store
from minqing.services.intake.residents.domain import (
    FeedbackAlreadyGiven,
    MatterClosed,
    MatterNotFound,
    NotSupervisable,
    NotYetResolved,
    SupervisorNotFound,
    UnknownToken,
)
from minqing.services.intake.residents.handlers import (
    Residents,
    give_feedback,
    invite_supervisor,
    record_supervision,
)
from minqing.shared.domain.text import Line, Text
from minqing.shared.persistence.db import Sessions
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.edge import IssueId

Token = Annotated[str, Path(min_length=16, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
SupervisorRef = Annotated[str, StringConstraints(pattern=r"^sup_[0-9A-Z]{26}$")]

# Each domain error, as HTTP.
_STATUS: dict[type[Exception], int] = {
    MatterNotFound: status.HTTP_404_NOT_FOUND,
    SupervisorNotFound: status.HTTP_404_NOT_FOUND,
    UnknownToken: status.HTTP_404_NOT_FOUND,
    NotSupervisable: status.HTTP_409_CONFLICT,
    MatterClosed: status.HTTP_409_CONFLICT,
    NotYetResolved: status.HTTP_409_CONFLICT,
    FeedbackAlreadyGiven: status.HTTP_409_CONFLICT,
}


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupervisorIn(_Input):
    name: Annotated[Line, StringConstraints(min_length=1, max_length=100)]
    phone: Phone | None = None
    invited_by: Annotated[Line, StringConstraints(min_length=1, max_length=100)]


class SupervisorInvited(BaseModel):
    supervisor_ref: str
    event_id: str


class SupervisionIn(_Input):
    supervisor_ref: SupervisorRef
    kind: Literal["check", "sign_off"]
    satisfied: bool
    notes: Annotated[Text, StringConstraints(max_length=2000)] = ""


class FeedbackIn(_Input):
    score: Annotated[int, Field(ge=1, le=5, strict=True)]
    comment: Annotated[Text, StringConstraints(max_length=2000)] = ""


class Recorded(BaseModel):
    event_id: str


class FeedbackOut(BaseModel):
    issue_id: str
    event_id: str
    revisit_flagged: bool


def _refused(exc: Exception) -> HTTPException:
    return HTTPException(_STATUS[type(exc)], str(exc))


def build_residents_router(
    units: UowFactory[Residents], sessions: Sessions, groups: frozenset[str]
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["residents"])
    refusals = tuple(_STATUS)

    async def read(query: Callable[[AsyncSession], Awaitable[list[dict[str, Any]]]]) -> Any:
        async with sessions() as session:
            return await query(session)

    @router.post("/issues/{issue_id}/supervisors", status_code=status.HTTP_201_CREATED)
    async def post_supervisor(issue_id: IssueId, body: SupervisorIn) -> SupervisorInvited:
        """Invite a resident to supervise a matter (projects improving production and living
        facilities). The name and phone stay in intake."""
        try:
            ref, event_id = await invite_supervisor(
                units,
                issue_id,
                name=body.name,
                phone=body.phone,
                invited_by=body.invited_by,
                groups=groups,
            )
        except refusals as exc:
            raise _refused(exc) from exc
        return SupervisorInvited(supervisor_ref=ref, event_id=event_id)

    @router.get("/issues/{issue_id}/supervisors")
    async def get_supervisors(issue_id: IssueId) -> list[dict[str, Any]]:
        """A matter's supervisors: reference, masked phone, who invited them and when."""
        result: list[dict[str, Any]] = await read(lambda s: store.supervisors_of(s, issue_id))
        return result

    @router.post("/issues/{issue_id}/supervision", status_code=status.HTTP_201_CREATED)
    async def post_supervision(issue_id: IssueId, body: SupervisionIn) -> Recorded:
        """A supervisor's check (while the matter is open) or sign-off (once resolved)."""
        try:
            event_id = await record_supervision(
                units,
                issue_id,
                supervisor_ref=body.supervisor_ref,
                kind=body.kind,
                satisfied=body.satisfied,
                notes=body.notes,
                groups=groups,
            )
        except refusals as exc:
            raise _refused(exc) from exc
        return Recorded(event_id=event_id)

    @router.get("/issues/{issue_id}/supervision")
    async def get_supervision(issue_id: IssueId) -> list[dict[str, Any]]:
        """A matter's supervision records, oldest first."""
        result: list[dict[str, Any]] = await read(lambda s: store.supervisions_of(s, issue_id))
        return result

    @router.get("/issues/{issue_id}/replies")
    async def get_replies(issue_id: IssueId) -> list[dict[str, Any]]:
        """Every answer to the matter's reporters, sent or waiting, with their feedback."""
        result: list[dict[str, Any]] = await read(lambda s: store.replies_of(s, issue_id))
        return result

    @router.post("/feedback/{token}", status_code=status.HTTP_201_CREATED)
    async def post_feedback(token: Token, body: FeedbackIn) -> FeedbackOut:
        """A reporter rates how the matter was handled (1-5), with the token of the reply's
        link; 2 or less flags the matter for a re-visit. One answer per reply."""
        try:
            taken = await give_feedback(units, token, body.score, body.comment)
        except refusals as exc:
            raise _refused(exc) from exc
        return FeedbackOut(
            issue_id=taken.issue_id, event_id=taken.event_id, revisit_flagged=taken.revisit_flagged
        )

    @router.get("/revisits")
    async def get_revisits(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """Matters flagged for a re-visit by a dissatisfied reporter, newest first."""
        result: list[dict[str, Any]] = await read(lambda s: store.revisits(s, limit))
        return result

    return router
