"""Intake's HTTP edge: request models, one handler call per route, errors mapped to HTTP."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Response, status
from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
)

from minqing.services.intake.deps import PolicyDep, Reference, ReportUnits
from minqing.services.intake.handlers import (
    Accepted,
    IdempotencyKeyReused,
    NotADuplicate,
    StoredReport,
    reached,
    report_issue,
    reports_of,
    split_duplicate,
)
from minqing.services.intake.inputs import Input, ReportIn
from minqing.services.intake.photos.domain import PhotosRefused
from minqing.services.intake.photos.handlers import ReportsWithPhotos, report_photos
from minqing.shared.domain.text import Line, Text
from minqing.shared.identity.web import CallerDep, GrantDep
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.acting import Legacy, OnBehalfOf, on_behalf_of
from minqing.shared.web.deps import from_state
from minqing.shared.web.edge import IssueId
from minqing.shared.web.errors import unprocessable
from minqing.shared.web.photos import PhotosIn, photo_refs

# Reports, with the photos a report attaches in its transaction (``app.py`` puts them).
ReportPhotoUnits = Annotated[UowFactory[ReportsWithPhotos], Depends(from_state("reports"))]


class StaffReportIn(ReportIn):
    """A report over HTTP, with the photos taken on the spot (uploaded first)."""

    photos: PhotosIn = Field(default_factory=list)


class ReportAccepted(BaseModel):
    """The matter the report is on. ``duplicate_of`` is set when the report was merged into
    a matter already on the list (its reporter hears back with everyone else's)."""

    issue_id: str
    event_id: str
    report_id: str
    duplicate_of: str | None = None
    similarity: float | None = None

    @classmethod
    def of(cls, accepted: Accepted) -> ReportAccepted:
        return cls(
            issue_id=accepted.issue_id,
            event_id=accepted.event_id,
            report_id=accepted.report_id,
            duplicate_of=accepted.duplicate_of,
            similarity=accepted.similarity,
        )


class ReportOut(BaseModel):
    """One report of a matter, without the reporter's name or phone."""

    report_id: str
    source: str
    title: str
    description: str
    received_at: datetime
    reporter_ref: str | None
    reporter_phone_masked: str | None
    external_ref: str | None
    duplicate: bool
    similarity: float | None

    @classmethod
    def of(cls, report: StoredReport) -> ReportOut:
        content = report.content
        return cls(
            report_id=report.report_id,
            source=content.source,
            title=content.title,
            description=content.description,
            received_at=report.received_at,
            reporter_ref=content.reporter_ref,
            reporter_phone_masked=content.reporter_phone_masked,
            external_ref=content.external_ref,
            duplicate=report.is_duplicate,
            similarity=report.similarity,
        )


class SplitIn(Input):
    reason: Annotated[Text, StringConstraints(min_length=1, max_length=1000)]
    on_behalf_of: OnBehalfOf = None
    by: Legacy = None


ERRORS: dict[type[Exception], int] = {
    IdempotencyKeyReused: status.HTTP_409_CONFLICT,
    NotADuplicate: status.HTTP_404_NOT_FOUND,
    PhotosRefused: status.HTTP_422_UNPROCESSABLE_CONTENT,
}
"""Intake's domain errors as HTTP statuses (registered on the app by ``app.py``)."""

router = APIRouter(prefix="/api/v1", tags=["intake"])


@router.post(
    "/reports",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "A retry with the same Idempotency-Key"},
        **unprocessable("A photo named is unknown, not the caller's, or already on a matter"),
    },
)
async def post_report(
    body: StaffReportIn,
    response: Response,
    units: ReportPhotoUnits,
    policy: PolicyDep,
    caller: CallerDep,
    idempotency_key: Annotated[Line | None, Header(max_length=200)] = None,
    x_correlation_id: Annotated[Line | None, Header(max_length=200)] = None,
) -> ReportAccepted:
    """Put a matter on the list; it is routed and assigned automatically."""
    # The validated request, not its bytes: a retry may format the same JSON differently.
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    if caller.source is not None and body.source != caller.source:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{caller.id} reports as {caller.source!r}, not {body.source!r}",
        )
    photos = photo_refs(body.photos)
    accepted = await report_issue(
        units,
        replace(body.to_command(), actor_id=caller.id, photos=photos),
        policy=policy,
        idempotency_key=idempotency_key,
        request_hash=digest,
        correlation_id=x_correlation_id,
        beside=report_photos(photos, caller.id) if photos else None,
    )
    if not accepted.created:
        response.status_code = status.HTTP_200_OK
    return ReportAccepted.of(accepted)


@router.get("/issues/{issue_id}/reports", responses={404: {"description": "No such matter"}})
async def get_reports(issue_id: IssueId, units: ReportUnits, grant: GrantDep) -> list[ReportOut]:
    """Every report a matter stands on: the first, then the duplicates that joined it
    (each reporter hears back). Names and phone numbers never leave intake."""
    found = await reports_of(units, issue_id)
    if found and not grant.town and not await reached(units, issue_id, grant.reaches):
        found = []  # another unit's matter is, for this caller, no matter at all
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no matter {issue_id}")
    return [ReportOut.of(r) for r in found]


@router.post(
    "/issues/{issue_id}/reports/{report_id}/split",
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "That report is not merged into that matter"}},
)
async def post_split(
    issue_id: IssueId, report_id: IssueId, body: SplitIn, units: ReportUnits, caller: CallerDep
) -> ReportAccepted:
    """Undo a wrong duplicate match: the report becomes a matter of its own."""
    accepted = await split_duplicate(
        units,
        issue_id,
        report_id,
        reason=body.reason,
        actor=caller.id,
        on_behalf_of=on_behalf_of(body.on_behalf_of, body.by),
    )
    return ReportAccepted.of(accepted)


@router.get("/reference")
async def get_reference(ref: Reference) -> dict[str, Any]:
    """The valid codes: categories, villages, sources and units, with their names."""
    return {
        "groups": {k: v.name for k, v in ref.groups.items()},
        "categories": {k: v.model_dump() for k, v in ref.categories.items()},
        "villages": {
            k: {"name": v.name, "kind": v.kind, "aliases": list(v.aliases)}
            for k, v in ref.villages.items()
        },
        "sources": {k: v.name for k, v in ref.sources.items()},
        "units": ref.codes("units"),
    }
