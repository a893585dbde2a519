"""Followup's HTTP edge: resolution (cancellation), look-back visits, plans and progress of
major affairs, and their money."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    model_validator,
)

from minqing.services.followup.domain import (
    NotLineStaff,
    PlanBeyondDeadline,
    RecordFunding,
    RecordLookback,
    ReportProgress,
    ResolveIssue,
    UnknownIssue,
    WrongState,
)
from minqing.services.followup.handlers import (
    Cases,
    FundTotal,
    Recorded,
    Rules,
    SetPlan,
    UnknownTemplate,
    fund_totals,
    load_case,
    record_funding,
    record_lookback,
    report_progress,
    resolve_issue,
    set_plan,
)
from minqing.services.followup.linestaff import Staff, UnknownStaff
from minqing.services.followup.plans import StageRequest
from minqing.services.followup.registry import LineStaffStore, staff_of
from minqing.shared.contract.events import FundingSource, FundingStatus, IssueStatus
from minqing.shared.contract.reference import code_of
from minqing.shared.domain.ids import new_id
from minqing.shared.domain.text import Line, Text
from minqing.shared.identity.principal import Principal
from minqing.shared.identity.web import CallerDep, GrantDep
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.acting import Legacy, OnBehalfOf, on_behalf_of
from minqing.shared.web.deps import from_state
from minqing.shared.web.edge import IssueId
from minqing.shared.web.errors import unprocessable
from minqing.shared.web.photos import PhotosIn, photo_refs

Summary = Annotated[Text, StringConstraints(min_length=1, max_length=5000)]
Reason = Annotated[Text, StringConstraints(min_length=1, max_length=1000)]
Name = Annotated[Line, StringConstraints(min_length=1, max_length=100)]
Yuan = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResolutionIn(_Input):
    """The assigned unit reports the matter solved."""

    unit: Annotated[str, AfterValidator(code_of("units"))]
    summary: Summary
    on_behalf_of: OnBehalfOf = None
    resolved_by: Legacy = None
    evidence: list[HttpUrl] = Field(default=[], max_length=20, description="http(s) links")
    cost: Yuan | None = Field(default=None, description="yuan, at most 2 decimals")
    funding_source: FundingSource | None = None
    photos: PhotosIn = Field(default_factory=list)  # uploaded first, to intake

    def to_command(self, actor: str) -> ResolveIssue:
        return ResolveIssue(
            unit=self.unit,
            summary=self.summary,
            resolved_by=actor,
            on_behalf_of=on_behalf_of(self.on_behalf_of, self.resolved_by),
            evidence=tuple(str(link) for link in self.evidence),
            cost=self.cost,
            funding_source=self.funding_source,
            photos=photo_refs(self.photos),
        )


class StageIn(_Input):
    """One milestone: due ``working_days`` working days from today, given to the assigned
    unit, the village secretary, or a named person."""

    title: Name
    working_days: int = Field(ge=0, le=1000)
    responsible: Literal["unit", "village_secretary", "person"] = "unit"
    person_id: Name | None = None
    person_name: Name | None = None

    @model_validator(mode="after")
    def _person_named(self) -> Self:
        if self.responsible == "person" and not (self.person_id and self.person_name):
            raise ValueError("a milestone given to a person names person_id and person_name")
        return self


class PlanIn(_Input):
    """A plan template by name, or the milestones themselves (in order). A plan whose last
    milestone is due after the matter's deadline is refused (422) unless
    ``extend_deadline_reason`` says why the deadline is to follow it."""

    on_behalf_of: OnBehalfOf = None
    set_by: Legacy = None
    template: Name | None = None
    milestones: list[StageIn] = Field(default=[], max_length=50)
    extend_deadline_reason: Reason | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.template is None) == (not self.milestones):
            raise ValueError("give either template or milestones")
        return self

    def to_command(self, actor: str) -> SetPlan:
        stages = tuple(
            StageRequest(m.title, m.working_days, m.responsible, m.person_id, m.person_name)
            for m in self.milestones
        )
        return SetPlan(
            set_by=actor,
            on_behalf_of=on_behalf_of(self.on_behalf_of, self.set_by),
            template=self.template,
            stages=stages,
            extend_deadline_reason=self.extend_deadline_reason,
        )


class ProgressIn(_Input):
    milestone: int = Field(ge=1)
    note: Text = ""
    done: bool = False
    on_behalf_of: OnBehalfOf = None
    reported_by: Legacy = None

    def to_command(self, actor: str, unit: str | None = None) -> ReportProgress:
        named = on_behalf_of(self.on_behalf_of, self.reported_by)
        return ReportProgress(self.milestone, self.note, self.done, actor, unit, named)


class FundingIn(_Input):
    """Money for the matter; a ``funding_id`` from before records a new status."""

    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
    source: FundingSource
    status: FundingStatus
    note: Text = ""
    on_behalf_of: OnBehalfOf = None
    recorded_by: Legacy = None
    funding_id: Name | None = None

    def to_command(self, actor: str) -> RecordFunding:
        """A new entry gets a new ``funding_id``."""
        return RecordFunding(
            funding_id=self.funding_id or new_id(),
            amount=self.amount,
            source=self.source,
            status=self.status,
            recorded_by=actor,
            note=self.note,
            on_behalf_of=on_behalf_of(self.on_behalf_of, self.recorded_by),
        )


class MilestoneOut(BaseModel):
    number: int
    title: str
    due: date
    responsible_id: str
    responsible_name: str
    provisional: bool
    done: bool
    overdue: bool
    escalation_level: int


class FundingOut(BaseModel):
    funding_id: str
    amount: Decimal
    source: FundingSource
    status: FundingStatus


class FundTotalOut(BaseModel):
    source: FundingSource
    status: FundingStatus
    amount: Decimal
    entries: int
    matters: int


class FundsOut(BaseModel):
    totals: list[FundTotalOut]
    by_source: dict[str, Decimal]


class LookbackIn(_Input):
    """What the look-back visit found."""

    outcome: Literal["passed", "failed"]
    notes: Text = ""
    on_behalf_of: OnBehalfOf = None
    visitor: Legacy = None
    photos: PhotosIn = Field(default_factory=list)  # uploaded first, to intake

    def to_command(self, caller: Principal, staff: Staff | None) -> RecordLookback:
        """The caller is the visitor, checked against the registry of line staff."""
        return RecordLookback(
            outcome=self.outcome,
            visitor=caller.id,
            notes=self.notes,
            on_behalf_of=on_behalf_of(self.on_behalf_of, self.visitor),
            visitor_units=caller.units(),
            line_staff_of=staff.unit if staff is not None else None,
            checked=True,
            photos=photo_refs(self.photos),
        )

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
    deadline_calendar: str | None  # which calendar counted the deadline
    lookback_due: date | None
    calendar: str  # the calendar look-back and milestone dates are counted on
    resolved_by: str | None
    lookback_unit: str | None
    lookback_failures: int
    plan_template: str | None
    milestones: list[MilestoneOut]
    funds: list[FundingOut]
    last_event_id: str
    correlation_id: str


class StepRecorded(BaseModel):
    issue_id: str
    event_id: str
    status: IssueStatus
    lookback_due: date | None


class FundingStepRecorded(StepRecorded):
    """The step, and the entry's ``funding_id``: send it with the next status (applied,
    then approved...) to move this entry on instead of adding another."""

    funding_id: str


ERRORS: dict[type[Exception], int] = {
    UnknownIssue: status.HTTP_404_NOT_FOUND,
    UnknownStaff: status.HTTP_404_NOT_FOUND,
    NotLineStaff: status.HTTP_403_FORBIDDEN,
    WrongState: status.HTTP_409_CONFLICT,
    UnknownTemplate: status.HTTP_422_UNPROCESSABLE_CONTENT,
    PlanBeyondDeadline: status.HTTP_422_UNPROCESSABLE_CONTENT,
}
"""Followup's domain errors as HTTP statuses (registered on the app by ``app.py``)."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such matter"}}
REFUSED: dict[int | str, dict[str, Any]] = {**NOT_FOUND, 409: {"description": "Wrong state"}}


# The units of work, and followup's rules (calendar, ladder, plans, reviewers), on the app.
UnitsOfWork = Annotated[UowFactory[Cases], Depends(from_state("units"))]
Reads = Annotated[UowFactory[Cases], Depends(from_state("reads"))]  # one round trip a query
StaffUnits = Annotated[UowFactory[LineStaffStore], Depends(from_state("staff_units"))]
RulesDep = Annotated[Rules, Depends(from_state("rules"))]
router = APIRouter(prefix="/api/v1/issues", tags=["followup"])
funds_router = APIRouter(prefix="/api/v1/funds", tags=["followup"])


@router.post("/{issue_id}/resolution", status_code=201, responses=REFUSED)
async def post_resolution(
    issue_id: IssueId,
    body: ResolutionIn,
    units: UnitsOfWork,
    rules: RulesDep,
    caller: CallerDep,
    grant: GrantDep,
) -> StepRecorded:
    """The assigned unit cancels the item; a look-back is then due in 7 working days."""
    command = body.to_command(caller.id)
    return _answer(issue_id, await resolve_issue(units, rules, issue_id, command, grant.reaches))


@router.post(
    "/{issue_id}/lookback",
    status_code=201,
    responses=REFUSED | {403: {"description": "Not line staff of the look-back unit"}},
)
async def post_lookback(
    issue_id: IssueId,
    body: LookbackIn,
    units: UnitsOfWork,
    staff_units: StaffUnits,
    rules: RulesDep,
    caller: CallerDep,
    grant: GrantDep,
) -> StepRecorded:
    """Record the look-back visit: passed closes the matter, failed reopens it. Only line
    staff of the matter's look-back unit (the registry of line staff) record it (403
    naming the unit otherwise)."""
    command = body.to_command(caller, await staff_of(staff_units, caller.id))
    return _answer(issue_id, await record_lookback(units, rules, issue_id, command, grant.reaches))


@router.put(
    "/{issue_id}/plan",
    responses=REFUSED
    | unprocessable(
        "Fields that do not validate, an unknown template, or a milestone due after the deadline"
    ),
)
async def put_plan(
    issue_id: IssueId,
    body: PlanIn,
    units: UnitsOfWork,
    rules: RulesDep,
    caller: CallerDep,
    grant: GrantDep,
) -> StepRecorded:
    """The assigned unit sets or changes the staged plan of its matter."""
    command = body.to_command(caller.id)
    return _answer(issue_id, await set_plan(units, rules, issue_id, command, grant.reaches))


@router.post("/{issue_id}/progress", status_code=201, responses=REFUSED)
async def post_progress(
    issue_id: IssueId,
    body: ProgressIn,
    units: UnitsOfWork,
    rules: RulesDep,
    caller: CallerDep,
    grant: GrantDep,
) -> StepRecorded:
    """Progress on one milestone of the plan (done or not)."""
    command = body.to_command(caller.id)
    return _answer(issue_id, await report_progress(units, rules, issue_id, command, grant.reaches))


@router.post("/{issue_id}/funding", status_code=201, responses=REFUSED)
async def post_funding(
    issue_id: IssueId,
    body: FundingIn,
    units: UnitsOfWork,
    rules: RulesDep,
    caller: CallerDep,
    grant: GrantDep,
) -> FundingStepRecorded:
    """Money for the matter: a new entry, or (same funding_id) its new status; the
    answer names the entry's funding_id."""
    command = body.to_command(caller.id)
    recorded = await record_funding(units, rules, issue_id, command, grant.reaches)
    step = _answer(issue_id, recorded)
    return FundingStepRecorded(**step.model_dump(), funding_id=command.funding_id)


@router.get("/{issue_id}/case", responses=NOT_FOUND)
async def get_case(issue_id: IssueId, units: Reads, rules: RulesDep, grant: GrantDep) -> CaseOut:
    """What followup knows of the matter: whether it can be resolved or visited now (the
    matter itself, as people read it, is the projection's ``GET /api/v1/issues/{issue_id}``)."""
    tracked = await load_case(units, issue_id, grant.reaches)
    if tracked is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such matter")
    return CaseOut(
        issue_id=issue_id,
        last_event_id=tracked.last_event_id,
        correlation_id=tracked.correlation_id,
        calendar=rules.calendar.name,
        **asdict(tracked.case),
    )


@funds_router.get("")
async def get_funds(units: UnitsOfWork) -> FundsOut:
    """The money of every matter, in yuan, summed by source and status."""
    totals = await fund_totals(units)
    return FundsOut(
        totals=[FundTotalOut(**asdict(t)) for t in totals], by_source=_by_source(totals)
    )


def _by_source(totals: list[FundTotal]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for total in totals:
        sums[total.source] = sums.get(total.source, Decimal(0)) + total.amount
    return sums


def _answer(issue_id: str, recorded: Recorded) -> StepRecorded:
    return StepRecorded(
        issue_id=issue_id,
        event_id=recorded.event_id,
        status=recorded.case.status,
        lookback_due=recorded.case.lookback_due,
    )
