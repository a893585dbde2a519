"""Residents' personal information over HTTP: a matter's reporters in full (each answer
recorded on the matter's trail), and a reporter's or a resident supervisor's erasure. See
``personal``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, StringConstraints

from minqing.services.intake.personal import (
    Contact,
    Contacts,
    NoSuchMatter,
    NoSuchReporter,
    NoSuchSupervisor,
    erase_reporter,
    erase_supervisor,
    reveal_contacts,
)
from minqing.shared.domain.text import Line
from minqing.shared.identity.web import CallerDep, GrantDep
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.deps import from_state
from minqing.shared.web.edge import IssueId

ContactUnits = Annotated[UowFactory[Contacts], Depends(from_state("contacts"))]
Reason = Annotated[
    Line,
    StringConstraints(min_length=1, max_length=500),
    Query(description="Why: recorded with the caller on the matter's audit trail"),
]
ReporterRef = Annotated[
    str,
    Path(
        pattern=r"^rpt_[0-7][0-9A-HJKMNP-TV-Z]{25}$",
        description="The reporter's reference, as the matter's reports show it",
    ),
]

SupervisorRef = Annotated[
    str,
    Path(
        pattern=r"^sup_[0-7][0-9A-HJKMNP-TV-Z]{25}$",
        description="The resident supervisor's reference, as the matter's supervisors show it",
    ),
]


class ContactOut(BaseModel):
    """One reporter of a matter, with the full name and phone."""

    reporter_ref: str
    name: str | None
    phone: str | None

    @classmethod
    def of(cls, contact: Contact) -> ContactOut:
        return cls(reporter_ref=contact.reporter_ref, name=contact.name, phone=contact.phone)


class Erased(BaseModel):
    """The reporter erased, and the matters whose trails record it."""

    reporter_ref: str
    issue_ids: list[str]


class SupervisorErased(BaseModel):
    """The resident supervisor erased, and the matter whose trail records it."""

    supervisor_ref: str
    issue_id: str


ERRORS: dict[type[Exception], int] = {
    NoSuchMatter: status.HTTP_404_NOT_FOUND,
    NoSuchReporter: status.HTTP_404_NOT_FOUND,
    NoSuchSupervisor: status.HTTP_404_NOT_FOUND,
}

router = APIRouter(prefix="/api/v1", tags=["intake"])


@router.get("/issues/{issue_id}/reporters", responses={404: {"description": "No such matter"}})
async def get_reporters(
    issue_id: IssueId, reason: Reason, units: ContactUnits, grant: GrantDep, caller: CallerDep
) -> list[ContactOut]:
    """A matter's reporters with their full names and phones. Every answer is recorded
    (``issue.contact_revealed``: who, which reporters, why) in the same transaction; another
    unit's matter is a 404, as if it did not exist."""
    contacts = await reveal_contacts(
        units,
        issue_id,
        reach=None if grant.town else grant.reaches,
        reason=reason,
        actor=caller.id,
    )
    return [ContactOut.of(c) for c in contacts]


@router.delete("/reporters/{reporter_ref}", responses={404: {"description": "No such contact"}})
async def delete_reporter(
    reporter_ref: ReporterRef, reason: Reason, units: ContactUnits, caller: CallerDep
) -> Erased:
    """Erase a reporter's name and phone: replies still waiting for them are dropped, and
    ``issue.reporter_erased`` is recorded on every matter they reported."""
    issues = await erase_reporter(units, reporter_ref, reason=reason, actor=caller.id)
    return Erased(reporter_ref=reporter_ref, issue_ids=issues)


@router.delete(
    "/supervisors/{supervisor_ref}", responses={404: {"description": "No such supervisor"}}
)
async def delete_supervisor(
    supervisor_ref: SupervisorRef, reason: Reason, units: ContactUnits, caller: CallerDep
) -> SupervisorErased:
    """Erase an invited resident supervisor's name and phone (their reference and masked
    phone stay): ``issue.supervisor_erased`` is recorded on the matter they supervise."""
    issue_id = await erase_supervisor(units, supervisor_ref, reason=reason, actor=caller.id)
    return SupervisorErased(supervisor_ref=supervisor_ref, issue_id=issue_id)
