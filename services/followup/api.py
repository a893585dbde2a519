"""Followup's HTTP edge: resolution (cancellation) and look-back visits."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, HTTPException, status
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator

from services.followup.domain import RecordLookback, ResolveIssue, UnknownIssue, WrongState
from services.followup.handlers import (
    Cases,
    Recorded,
    Rules,
    load_case,
    record_lookback,
    resolve_issue,
)
from shared.edge import IssueId
from shared.events import IssueStatus
from shared.reference import code_of
from shared.text import Line, Text
from shared.uow import UowFactory

Summary = Annotated[Text, StringConstraints(min_length=1, max_length=5000)]
Name = Annotated[Line, StringConstraints(min_length=1, max_length=100)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResolutionIn(_Input):
    """The assigned unit reports the matter solved."""

    unit: Annotated[str, AfterValidator(code_of("units"))]
    summary: Summary
    resolved_by: Name | None = None


class LookbackIn(_Input):
    """What the look-back visit found."""

    outcome: Literal["passed", "failed"]
    visitor: Name
    notes: Text = ""

    @model_validator(mode="after")
    def _failed_says_why(self) -> Self:
        if self.outcome == "failed" and not self.notes:
            raise ValueError("notes must say what is still wrong when the look-back fails")
        return self


class CaseOut(BaseModel):
    issue_id: str
    status: IssueStatus
    assignment_no: int
    unit: str | None
    deadline: date | None
    lookback_due: date | None
    last_event_id: str
    correlation_id: str


class StepRecorded(BaseModel):
    issue_id: str
    event_id: str
    status: IssueStatus
    lookback_due: date | None


def build_router(units: UowFactory[Cases], rules: Rules) -> APIRouter:
    router = APIRouter(prefix="/api/v1/issues", tags=["followup"])
    errors: dict[int | str, dict[str, Any]] = {
        404: {"description": "No such matter"},
        409: {"description": "Wrong state"},
    }

    @router.post("/{issue_id}/resolution", status_code=201, responses=errors)
    async def post_resolution(issue_id: IssueId, body: ResolutionIn) -> StepRecorded:
        """The assigned unit cancels the item; a look-back is then due in 7 working days."""
        command = ResolveIssue(unit=body.unit, summary=body.summary, resolved_by=body.resolved_by)
        return _answer(issue_id, await _guard(resolve_issue(units, rules, issue_id, command)))

    @router.post("/{issue_id}/lookback", status_code=201, responses=errors)
    async def post_lookback(issue_id: IssueId, body: LookbackIn) -> StepRecorded:
        """Record the look-back visit: passed closes the matter, failed reopens it."""
        command = RecordLookback(outcome=body.outcome, visitor=body.visitor, notes=body.notes)
        return _answer(issue_id, await _guard(record_lookback(units, rules, issue_id, command)))

    @router.get("/{issue_id}", responses={404: {"description": "No such matter"}})
    async def get_case(issue_id: IssueId) -> CaseOut:
        """What followup knows of the matter: whether it can be resolved or visited now."""
        tracked = await load_case(units, issue_id)
        if tracked is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such matter")
        return CaseOut(
            issue_id=issue_id,
            last_event_id=tracked.last_event_id,
            correlation_id=tracked.correlation_id,
            **asdict(tracked.case),
        )

    return router


async def _guard(step: Awaitable[Recorded]) -> Recorded:
    """Domain errors become HTTP answers: unknown matter 404, wrong state 409."""
    try:
        return await step
    except UnknownIssue as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except WrongState as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


def _answer(issue_id: str, recorded: Recorded) -> StepRecorded:
    return StepRecorded(
        issue_id=issue_id,
        event_id=recorded.event_id,
        status=recorded.case.status,
        lookback_due=recorded.case.lookback_due,
    )
