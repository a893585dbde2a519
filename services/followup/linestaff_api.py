"""Followup's HTTP edge for line staff: the registry of line staff (list, add or change,
remove: each change an event) and a member's own list of look-backs due."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from minqing.services.followup.handlers import LookbackTask, Rules, lookbacks_due
from minqing.services.followup.linestaff import PERSON_ID, PutStaff, RemoveStaff, Staff
from minqing.services.followup.registry import (
    LineStaffStore,
    StaffFiles,
    list_line_staff,
    put_line_staff,
    remove_line_staff,
    staff_of,
)
from minqing.shared.contract import reference
from minqing.shared.contract.events import IssueStatus
from minqing.shared.contract.reference import code_of
from minqing.shared.domain.text import Line, Text
from minqing.shared.identity.web import CallerDep
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.acting import OnBehalfOf
from minqing.shared.web.deps import from_state

Reason = Annotated[Text, StringConstraints(min_length=1, max_length=1000)]
Name = Annotated[Line, StringConstraints(min_length=1, max_length=100)]
PersonId = Annotated[str, Path(pattern=PERSON_ID, max_length=72)]

StaffUnits = Annotated[UowFactory[LineStaffStore], Depends(from_state("staff_units"))]
StaffFilesDep = Annotated[StaffFiles, Depends(from_state("staff_files"))]
CasesDep = Annotated[Any, Depends(from_state("units"))]
RulesDep = Annotated[Rules, Depends(from_state("rules"))]
router = APIRouter(prefix="/api/v1", tags=["followup"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not line staff"}}
NOT_LINE_STAFF: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller is not in the registry of line staff"}
}


class StaffIn(BaseModel):
    """A person as line staff of ``unit``, visiting ``villages`` (none: every village)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    unit: Annotated[str, AfterValidator(code_of("units"))]
    villages: list[Annotated[str, AfterValidator(code_of("villages"))]] = Field(
        default=[], max_length=50
    )
    reason: Reason
    on_behalf_of: OnBehalfOf = None


class StaffOut(BaseModel):
    person_id: str
    person_name: str
    unit: str
    unit_name: str
    villages: list[str]  # empty: every village
    village_names: list[str]


class RemovedOut(BaseModel):
    person_id: str
    unit: str
    removed: bool


class TaskOut(BaseModel):
    """One visit to make: what a visitor needs on the site (never the reporter's name or
    phone: the look-back checks the work, and the matter's page reveals the contact to the
    assigned unit only)."""

    issue_id: str
    kind: Literal["lookback", "revisit"]
    due: date
    status: IssueStatus
    title: str | None
    village: str | None
    village_name: str | None
    address: str | None
    unit: str | None  # the unit that resolved it
    unit_name: str | None
    summary: str | None  # what the unit said it did
    resolved_on: date | None
    lookback_due: date | None
    lookback_failures: int
    revisit_reason: str | None  # a resident's low score asked for this visit
    revisit_due: date | None


class MyLookbacksOut(BaseModel):
    person_id: str
    person_name: str
    unit: str
    unit_name: str
    villages: list[str]
    tasks: list[TaskOut]


def _names(kind: Literal["units", "villages"]) -> dict[str, str]:
    data = reference.active()
    if kind == "units":
        return {code: entry.name for code, entry in data.registry().items()}
    return {code: village.name for code, village in data.villages.items()}


def _staff(staff: Staff) -> StaffOut:
    units, villages = _names("units"), _names("villages")
    return StaffOut(
        person_id=staff.person_id,
        person_name=staff.person_name,
        unit=staff.unit,
        unit_name=units.get(staff.unit, staff.unit),
        villages=list(staff.villages),
        village_names=[villages.get(v, v) for v in staff.villages],
    )


@router.get("/line-staff")
async def get_line_staff(
    staff_units: StaffUnits,
    unit: Annotated[str | None, Query(max_length=64)] = None,
) -> list[StaffOut]:
    """The registry of line staff (of ``unit``, when given), by person id."""
    found = await list_line_staff(staff_units)
    return [_staff(s) for s in found if unit is None or s.unit == unit]


@router.put("/line-staff/{person_id}")
async def put_staff(
    person_id: PersonId,
    body: StaffIn,
    staff_units: StaffUnits,
    files: StaffFilesDep,
    caller: CallerDep,
) -> StaffOut:
    """Add a person as line staff of a unit, or change their unit, villages or name (a
    ``linestaff.changed`` event; nothing is recorded when nothing changes)."""
    command = PutStaff(
        person_id=person_id,
        person_name=body.name,
        unit=body.unit,
        villages=tuple(dict.fromkeys(body.villages)),
        reason=body.reason,
        by=caller.id,
        on_behalf_of=body.on_behalf_of,
    )
    return _staff(await put_line_staff(staff_units, files, command))


@router.delete("/line-staff/{person_id}", responses=NOT_FOUND)
async def delete_staff(
    person_id: PersonId,
    reason: Annotated[str, Query(min_length=1, max_length=1000)],
    staff_units: StaffUnits,
    files: StaffFilesDep,
    caller: CallerDep,
) -> RemovedOut:
    """The person is line staff no more (a ``linestaff.changed`` event, ``removed``); the
    reference file does not bring them back."""
    command = RemoveStaff(person_id=person_id, reason=reason, by=caller.id)
    event = await remove_line_staff(staff_units, files, command)
    return RemovedOut(person_id=person_id, unit=event.unit, removed=True)


@router.get("/lookbacks/mine", responses=NOT_LINE_STAFF)
async def get_my_lookbacks(
    staff_units: StaffUnits, cases: CasesDep, rules: RulesDep, caller: CallerDep
) -> MyLookbacksOut:
    """The caller's look-backs due, the earliest first: the resolved matters whose
    look-back falls to the caller's unit, in the caller's villages, and the re-visits a
    resident's low score asked for."""
    me = await staff_of(staff_units, caller.id)
    if me is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{caller.id} is not in the registry of line staff: an operator adds line staff "
            "(PUT /api/v1/line-staff/{person_id})",
        )
    tasks = await lookbacks_due(cases, rules, me.unit, me.villages)
    out = _staff(me)
    return MyLookbacksOut(
        person_id=me.person_id,
        person_name=me.person_name,
        unit=me.unit,
        unit_name=out.unit_name,
        villages=list(me.villages),
        tasks=[_task(t) for t in tasks],
    )


def _task(task: LookbackTask) -> TaskOut:
    units, villages = _names("units"), _names("villages")
    case = task.case
    return TaskOut(
        issue_id=task.issue_id,
        kind=task.kind,
        due=task.due,
        status=case.status,
        title=case.title,
        village=case.village,
        village_name=villages.get(case.village or "", case.village),
        address=case.address,
        unit=case.unit,
        unit_name=units.get(case.unit or "", case.unit),
        summary=case.summary,
        resolved_on=case.resolved_on,
        lookback_due=case.lookback_due,
        lookback_failures=case.lookback_failures,
        revisit_reason=case.revisit_reason,
        revisit_due=case.revisit_due,
    )
