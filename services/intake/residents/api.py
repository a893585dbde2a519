"""Residents over HTTP: invite supervisors and record their checks; see a matter's
replies; take a reporter's feedback (by the token in the reply); list re-visits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from minqing.services.intake.deps import ReportUnits, SessionsDep
from minqing.services.intake.handlers import reached
from minqing.services.intake.inputs import Phone
from minqing.services.intake.residents import store
from minqing.services.intake.residents.domain import (
    FEEDBACK_TERMS,
    FeedbackAlreadyGiven,
    FeedbackExpired,
    FeedbackTerms,
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
from minqing.shared.identity.policy import Grant
from minqing.shared.identity.web import CallerDep, GrantDep
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.acting import Legacy, OnBehalfOf, on_behalf_of
from minqing.shared.web.deps import from_state
from minqing.shared.web.edge import IssueId

Token = Annotated[str, Path(min_length=16, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
SupervisorRef = Annotated[str, StringConstraints(pattern=r"^sup_[0-9A-Z]{26}$")]

ERRORS: dict[type[Exception], int] = {
    MatterNotFound: status.HTTP_404_NOT_FOUND,
    SupervisorNotFound: status.HTTP_404_NOT_FOUND,
    UnknownToken: status.HTTP_404_NOT_FOUND,
    NotSupervisable: status.HTTP_409_CONFLICT,
    MatterClosed: status.HTTP_409_CONFLICT,
    NotYetResolved: status.HTTP_409_CONFLICT,
    FeedbackAlreadyGiven: status.HTTP_409_CONFLICT,
    FeedbackExpired: status.HTTP_410_GONE,
}
"""Residents' domain errors as HTTP statuses (registered on the app by ``app.py``)."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupervisorIn(_Input):
    name: Annotated[Line, StringConstraints(min_length=1, max_length=100)]
    phone: Phone | None = None
    on_behalf_of: OnBehalfOf = None
    invited_by: Legacy = None


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


@dataclass(frozen=True)
class Supervision:
    """What the residents' routes use: units of work on residents' tables, the groups of
    categories whose matters residents may supervise, and how long a feedback link lasts."""

    units: UowFactory[Residents]
    groups: frozenset[str]
    feedback: FeedbackTerms = FEEDBACK_TERMS


SupervisionDep = Annotated[Supervision, Depends(from_state("residents"))]  # from ``app.py``
router = APIRouter(prefix="/api/v1", tags=["residents"])
# What the routes answer besides their success (ERRORS above), as their documents say.
NO_MATTER: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such matter, or one out of the caller's reach"}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such matter (or supervisor), or one out of the caller's reach"},
    409: {"description": "The matter cannot take this now (not supervised, closed, unresolved)"},
}
FEEDBACK: dict[int | str, dict[str, Any]] = {
    404: {"description": "No reply carries this token"},
    409: {"description": "This reply was already answered"},
    410: {"description": "This feedback link expired (MINQING_FEEDBACK_DAYS after the reply)"},
}


@router.post(
    "/issues/{issue_id}/supervisors", status_code=status.HTTP_201_CREATED, responses=REFUSED
)
async def post_supervisor(
    issue_id: IssueId, body: SupervisorIn, residents: SupervisionDep, caller: CallerDep
) -> SupervisorInvited:
    """Invite a resident to supervise a matter (projects improving production and living
    facilities). The name and phone stay in intake."""
    ref, event_id = await invite_supervisor(
        residents.units,
        issue_id,
        name=body.name,
        phone=body.phone,
        invited_by=caller.id,
        groups=residents.groups,
        on_behalf_of=on_behalf_of(body.on_behalf_of, body.invited_by),
    )
    return SupervisorInvited(supervisor_ref=ref, event_id=event_id)


@router.get("/issues/{issue_id}/supervisors", responses=NO_MATTER)
async def get_supervisors(
    issue_id: IssueId, sessions: SessionsDep, reports: ReportUnits, grant: GrantDep
) -> list[dict[str, Any]]:
    """A matter's supervisors: reference, masked phone, who invited them and when."""
    await _within_reach(reports, issue_id, grant)
    async with sessions() as session:
        return await store.supervisors_of(session, issue_id)


@router.post(
    "/issues/{issue_id}/supervision", status_code=status.HTTP_201_CREATED, responses=REFUSED
)
async def post_supervision(
    issue_id: IssueId, body: SupervisionIn, residents: SupervisionDep, caller: CallerDep
) -> Recorded:
    """A supervisor's check (while the matter is open) or sign-off (once resolved)."""
    event_id = await record_supervision(
        residents.units,
        issue_id,
        supervisor_ref=body.supervisor_ref,
        kind=body.kind,
        satisfied=body.satisfied,
        notes=body.notes,
        groups=residents.groups,
        recorded_by=caller.id,
    )
    return Recorded(event_id=event_id)


@router.get("/issues/{issue_id}/supervision", responses=NO_MATTER)
async def get_supervision(
    issue_id: IssueId, sessions: SessionsDep, reports: ReportUnits, grant: GrantDep
) -> list[dict[str, Any]]:
    """A matter's supervision records, oldest first."""
    await _within_reach(reports, issue_id, grant)
    async with sessions() as session:
        return await store.supervisions_of(session, issue_id)


@router.get("/issues/{issue_id}/replies", responses=NO_MATTER)
async def get_replies(
    issue_id: IssueId, sessions: SessionsDep, reports: ReportUnits, grant: GrantDep
) -> list[dict[str, Any]]:
    """Every answer to the matter's reporters, sent or waiting, with their feedback."""
    await _within_reach(reports, issue_id, grant)
    async with sessions() as session:
        return await store.replies_of(session, issue_id)


@router.post("/feedback/{token}", status_code=status.HTTP_201_CREATED, responses=FEEDBACK)
async def post_feedback(token: Token, body: FeedbackIn, residents: SupervisionDep) -> FeedbackOut:
    """A reporter rates how the matter was handled (1-5), with the token of the reply's
    link; 2 or less flags the matter for a re-visit. One answer per reply, within
    MINQING_FEEDBACK_DAYS of the reply being sent (410 after, saying when it expired)."""
    taken = await give_feedback(
        residents.units, token, body.score, body.comment, residents.feedback
    )
    return FeedbackOut(
        issue_id=taken.issue_id, event_id=taken.event_id, revisit_flagged=taken.revisit_flagged
    )


@router.get("/revisits")
async def get_revisits(
    sessions: SessionsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """Matters flagged for a re-visit by a dissatisfied reporter, newest first."""
    async with sessions() as session:
        return await store.revisits(session, limit)


async def _within_reach(reports: ReportUnits, issue_id: str, grant: Grant) -> None:
    """A matter out of the caller's reach is no matter at all for them (404, as unknown)."""
    if not grant.town and not await reached(reports, issue_id, grant.reaches):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no matter {issue_id}")
