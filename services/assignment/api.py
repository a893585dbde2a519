"""Assignment's HTTP edge: send back, re-assign, extend a deadline; the registry of units."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from minqing.services.assignment.domain import (
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
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.edge import IssueId

Reason = Annotated[Text, StringConstraints(min_length=1, max_length=2000)]
Name = Annotated[Line, StringConstraints(min_length=1, max_length=100)]
UnitCode = Annotated[str, AfterValidator(code_of("units"))]
T = TypeVar("T")


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendBackIn(_Input):
    """The assigned unit says the matter is not theirs."""

    unit: UnitCode
    reason: Reason
    by: Name


class PersonIn(_Input):
    id: Name
    name: Name


class ReassignIn(_Input):
    """Give the matter to another unit (by hand, or re-routing a sent-back matter)."""

    unit: UnitCode
    reason: Reason
    by: Name
    person: PersonIn | None = None  # default: the unit's responsible person
    working_days: int | None = Field(default=None, ge=1, le=365)


class ExtendIn(_Input):
    working_days: int = Field(ge=1, le=365)
    reason: Reason
    by: Name


class ResponsibleIn(_Input):
    person_id: Name
    person_name: Name
    contact: Name | None = None  # default: the unit's contact stays
    reason: Reason
    by: Name


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


def build_router(units: UowFactory[Assignments], rules: Rules) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["assignment"])
    errors: dict[int | str, dict[str, Any]] = {
        404: {"description": "No such matter or unit"},
        409: {"description": "Wrong state"},
    }

    @router.get("/issues/{issue_id}/assignment", responses={404: errors[404]})
    async def get_assignment(issue_id: IssueId) -> AssignmentOut:
        """The matter's current assignment: unit, responsible person, deadline, rule."""
        current = await load_assignment(units, issue_id)
        if current is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such matter assigned")
        return _assignment(issue_id, current)

    @router.post("/issues/{issue_id}/send-back", status_code=201, responses=errors)
    async def post_send_back(issue_id: IssueId, body: SendBackIn) -> StepOut:
        """The assigned unit sends the matter back; it stays on the hook until re-routed."""
        command = SendBack(unit=body.unit, reason=body.reason, by=body.by)
        return _step(issue_id, await _guard(send_back(units, rules, issue_id, command)))

    @router.post("/issues/{issue_id}/reassign", status_code=201, responses=errors)
    async def post_reassign(issue_id: IssueId, body: ReassignIn) -> StepOut:
        """Re-assign by hand (or re-route a sent-back matter), with a new deadline."""
        person = Person(id=body.person.id, name=body.person.name) if body.person else None
        command = Reassign(
            unit=body.unit,
            reason=body.reason,
            by=body.by,
            person=person,
            working_days=body.working_days,
        )
        return _step(issue_id, await _guard(reassign(units, rules, issue_id, command)))

    @router.post("/issues/{issue_id}/extend-deadline", status_code=201, responses=errors)
    async def post_extend(issue_id: IssueId, body: ExtendIn) -> StepOut:
        """Give the assigned unit more working days, with the reason."""
        command = ExtendDeadline(working_days=body.working_days, reason=body.reason, by=body.by)
        return _step(issue_id, await _guard(extend_deadline(units, rules, issue_id, command)))

    @router.get("/units")
    async def get_units() -> list[UnitOut]:
        """The registry of units and who is responsible for each now."""
        return [_unit(row) for row in (await list_units(units)).values()]

    @router.put("/units/{code}/responsible", responses={404: errors[404]})
    async def put_responsible(
        code: Annotated[str, Path(pattern=CODE_PATTERN, max_length=64)], body: ResponsibleIn
    ) -> ResponsibleOut:
        """A new responsible person (a new secretary); the unit's open matters follow."""
        command = ChangeResponsible(
            person_id=body.person_id,
            person_name=body.person_name,
            contact=body.contact,
            reason=body.reason,
            by=body.by,
        )
        row, moved = await _guard(change_responsible(units, rules, code, command))
        return ResponsibleOut(unit=_unit(row), open_matters_moved=moved)

    return router


async def _guard(step: Awaitable[T]) -> T:
    """Domain errors become HTTP answers: unknown matter or unit 404, wrong state 409."""
    try:
        return await step
    except (IssueNotAssigned, UnknownUnit) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except WrongState as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


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
    )


def _step(issue_id: str, recorded: Recorded) -> StepOut:
    return StepOut(
        event_id=recorded.event_id, assignment=_assignment(issue_id, recorded.assignment)
    )


def _unit(row: RegistryRow) -> UnitOut:
    return UnitOut(**row.current.model_dump())
