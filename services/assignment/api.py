"""Assignment's HTTP edge: accept, send back, re-assign, extend a deadline; the registry of
units."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from minqing.services.assignment.domain import (
    Accept,
    Assignment,
    ChangeResponsible,
    ExtendDeadline,
    IssueNotAssigned,
    Reassign,
    RegistryRow,
    SendBack,
    UnknownUnit,
    WrongState,
)
from minqing.services.assignment.handlers import (
    Assignments,
    Recorded,
    Rules,
    accept,
    change_responsible,
    extend_deadline,
    list_units,
    load_assignment,
    reassign,
    send_back,
)
from minqing.services.assignment.routing import Person
from minqing.shared.contract.reference import CODE_PATTERN, code_of
from minqing.shared.domain.text import Line, Text
from minqing.shared.identity.web import CallerDep, GrantDep
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.acting import Legacy, OnBehalfOf, on_behalf_of
from minqing.shared.web.deps import from_state
from minqing.shared.web.edge import IssueId

Reason = Annotated[Text, StringConstraints(min_length=1, max_length=2000)]
Name = Annotated[Line, StringConstraints(min_length=1, max_length=100)]
UnitCode = Annotated[str, AfterValidator(code_of("units"))]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcceptIn(_Input):
    """The assigned unit accepts the matter (签收); the unit is the caller's."""

    on_behalf_of: OnBehalfOf = None


class SendBackIn(_Input):
    """The assigned unit says the matter is not theirs."""

    unit: UnitCode
    reason: Reason
    on_behalf_of: OnBehalfOf = None
    by: Legacy = None


class PersonIn(_Input):
    id: Name
    name: Name


class ReassignIn(_Input):
    """Give the matter to another unit (by hand, or re-routing a sent-back matter)."""

    unit: UnitCode
    reason: Reason
    on_behalf_of: OnBehalfOf = None
    by: Legacy = None
    person: PersonIn | None = None  # default: the unit's responsible person
    working_days: int | None = Field(default=None, ge=1, le=365)

    def to_command(self, actor: str) -> Reassign:
        person = Person(id=self.person.id, name=self.person.name) if self.person else None
        return Reassign(
            unit=self.unit,
            reason=self.reason,
            by=actor,
            person=person,
            working_days=self.working_days,
            on_behalf_of=on_behalf_of(self.on_behalf_of, self.by),
        )


class ExtendIn(_Input):
    working_days: int = Field(ge=1, le=365)
    reason: Reason
    on_behalf_of: OnBehalfOf = None
    by: Legacy = None


class ResponsibleIn(_Input):
    person_id: Name
    person_name: Name
    contact: Name | None = None  # default: the unit's contact stays
    reason: Reason
    on_behalf_of: OnBehalfOf = None
    by: Legacy = None

    def to_command(self, actor: str) -> ChangeResponsible:
        return ChangeResponsible(
            person_id=self.person_id,
            person_name=self.person_name,
            contact=self.contact,
            reason=self.reason,
            by=actor,
            on_behalf_of=on_behalf_of(self.on_behalf_of, self.by),
        )


class AssignmentOut(BaseModel):
    issue_id: str
    status: str
    unit: str
    responsible_person_id: str
    responsible_person_name: str
    responsible_unit: str | None
    deadline: date
    deadline_provisional: bool
    calendar: str
    working_days: int
    assignment_no: int
    rule_id: str | None
    scale: str | None
    sent_back_reason: str | None
    accepted_by: str | None  # who of its unit accepted it (签收), for this assignment


class StepOut(BaseModel):
    event_id: str
    assignment: AssignmentOut


class UnitOut(BaseModel):
    code: str
    name: str
    kind: str
    village: str | None
    person_id: str
    person_name: str
    contact: str


class ResponsibleOut(BaseModel):
    unit: UnitOut
    open_matters_moved: int


ERRORS: dict[type[Exception], int] = {
    IssueNotAssigned: status.HTTP_404_NOT_FOUND,
    UnknownUnit: status.HTTP_404_NOT_FOUND,
    WrongState: status.HTTP_409_CONFLICT,
}
"""Assignment's domain errors as HTTP statuses (registered on the app by ``app.py``)."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such matter or unit"}}
REFUSED: dict[int | str, dict[str, Any]] = {**NOT_FOUND, 409: {"description": "Wrong state"}}


# The units of work, and the routing rules, calendar and registry files ``app.py`` put on the app.
UnitsOfWork = Annotated[UowFactory[Assignments], Depends(from_state("units"))]
RulesDep = Annotated[Rules, Depends(from_state("rules"))]
router = APIRouter(prefix="/api/v1", tags=["assignment"])


@router.get("/issues/{issue_id}/assignment", responses=NOT_FOUND)
async def get_assignment(issue_id: IssueId, units: UnitsOfWork, grant: GrantDep) -> AssignmentOut:
    """The matter's current assignment: unit, responsible person, deadline, rule."""
    current = await load_assignment(units, issue_id, grant.reaches)
    if current is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such matter assigned")
    return _assignment(issue_id, current)


@router.post("/issues/{issue_id}/acceptance", status_code=201, responses=REFUSED)
async def post_acceptance(
    issue_id: IssueId,
    body: AcceptIn,
    units: UnitsOfWork,
    caller: CallerDep,
    grant: GrantDep,
) -> StepOut:
    """The assigned unit accepts the matter (签收), once per assignment; 409 when it is not
    open with the unit, was sent back, or was already accepted."""
    command = Accept(caller.id, on_behalf_of(body.on_behalf_of))
    return _step(issue_id, await accept(units, issue_id, command, grant.reaches))


@router.post("/issues/{issue_id}/send-back", status_code=201, responses=REFUSED)
async def post_send_back(
    issue_id: IssueId,
    body: SendBackIn,
    units: UnitsOfWork,
    rules: RulesDep,
    caller: CallerDep,
    grant: GrantDep,
) -> StepOut:
    """The assigned unit sends the matter back; it stays on the hook until re-routed."""
    named = on_behalf_of(body.on_behalf_of, body.by)
    command = SendBack(body.unit, body.reason, caller.id, named)
    return _step(issue_id, await send_back(units, rules, issue_id, command, grant.reaches))


@router.post("/issues/{issue_id}/reassign", status_code=201, responses=REFUSED)
async def post_reassign(
    issue_id: IssueId,
    body: ReassignIn,
    units: UnitsOfWork,
    rules: RulesDep,
    caller: CallerDep,
    grant: GrantDep,
) -> StepOut:
    """Re-assign by hand (or re-route a sent-back matter), with a new deadline."""
    command = body.to_command(caller.id)
    return _step(issue_id, await reassign(units, rules, issue_id, command, grant.reaches))


@router.post("/issues/{issue_id}/extend-deadline", status_code=201, responses=REFUSED)
async def post_extend(
    issue_id: IssueId,
    body: ExtendIn,
    units: UnitsOfWork,
    rules: RulesDep,
    caller: CallerDep,
    grant: GrantDep,
) -> StepOut:
    """Give the assigned unit more working days, with the reason."""
    named = on_behalf_of(body.on_behalf_of, body.by)
    command = ExtendDeadline(body.working_days, body.reason, caller.id, named)
    return _step(issue_id, await extend_deadline(units, rules, issue_id, command, grant.reaches))


@router.get("/units")
async def get_units(units: UnitsOfWork) -> list[UnitOut]:
    """The registry of units and who is responsible for each now."""
    return [_unit(row) for row in (await list_units(units)).values()]


@router.put("/units/{code}/responsible", responses=NOT_FOUND)
async def put_responsible(
    code: Annotated[str, Path(pattern=CODE_PATTERN, max_length=64)],
    body: ResponsibleIn,
    units: UnitsOfWork,
    rules: RulesDep,
    caller: CallerDep,
) -> ResponsibleOut:
    """A new responsible person (a new secretary); the unit's open matters follow."""
    row, moved = await change_responsible(units, rules, code, body.to_command(caller.id))
    return ResponsibleOut(unit=_unit(row), open_matters_moved=moved)


def _assignment(issue_id: str, a: Assignment) -> AssignmentOut:
    return AssignmentOut(
        issue_id=issue_id,
        status=a.status,
        unit=a.unit,
        responsible_person_id=a.person_id,
        responsible_person_name=a.person_name,
        responsible_unit=a.responsible_unit,
        deadline=a.deadline,
        deadline_provisional=a.deadline_provisional,
        calendar=a.calendar,
        working_days=a.working_days,
        assignment_no=a.assignment_no,
        rule_id=a.rule_id,
        scale=a.scale,
        sent_back_reason=a.sent_back_reason,
        accepted_by=a.accepted_by,
    )


def _step(issue_id: str, recorded: Recorded) -> StepOut:
    return StepOut(
        event_id=recorded.event_id, assignment=_assignment(issue_id, recorded.assignment)
    )


def _unit(row: RegistryRow) -> UnitOut:
    return UnitOut(**row.current.model_dump())
