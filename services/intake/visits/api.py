"""Door-to-door visits that found nothing (``POST /api/v1/visits``), and households visited
per village in a period (``GET /api/v1/visits/summary``), beside the matters reported on
visits (reports of source ``visit``).

A visit is kept in intake's own table, not published as an event: every event of the
contract is about one matter (the envelope's ``subject`` is its issue id; the projection's
history, the assignment and the followup all key by it), and a visit that found nothing is
about no matter. Exactly once like a report: the same ``Idempotency-Key`` from the same
visitor answers the visit recorded the first time (200), with another body a 409.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field
from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake.deps import Reference, SessionsDep, SettingsDep
from minqing.services.intake.inputs import Input, LocationIn
from minqing.services.intake.store import reports
from minqing.services.intake.visits.tables import visits
from minqing.shared.contract.reference import code_of
from minqing.shared.domain.ids import new_id
from minqing.shared.domain.text import Line
from minqing.shared.identity.web import CallerDep
from minqing.shared.web.deps import ClockDep
from minqing.shared.web.errors import unprocessable

router = APIRouter(prefix="/api/v1", tags=["visits"])
# A phone may hold a visit recorded offline for days, not for years.
OLDEST = timedelta(days=366)
# The days a summary may ask about (beyond them, no visit can have been recorded).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)


class VisitIn(Input):
    """A visit that found nothing to report: where, how many households, when (the phone's
    time: a visit recorded offline is sent later)."""

    village: Annotated[str, AfterValidator(code_of("villages"))]
    households: Annotated[int, Field(ge=1, le=500)] = 1
    visited_at: AwareDatetime | None = None
    location: LocationIn | None = None


class VisitRecorded(BaseModel):
    visit_id: str
    village: str
    households: int
    visited_at: datetime


class VillageVisits(BaseModel):
    village: str
    name: str
    visits: int  # visits that found nothing
    households: int  # households those visits saw
    matters: int  # matters reported on visits (source ``visit``) in the village


class VisitSummary(BaseModel):
    start: date
    end: date  # inclusive
    villages: list[VillageVisits]
    visits: int
    households: int
    matters: int


@router.post(
    "/visits",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "A retry with the same Idempotency-Key"},
        409: {"description": "The Idempotency-Key was used for another visit"},
        **unprocessable("A field that does not validate, or a visit over a year old"),
    },
)
async def post_visit(
    body: VisitIn,
    response: Response,
    sessions: SessionsDep,
    caller: CallerDep,
    clock: ClockDep,
    idempotency_key: Annotated[Line | None, Header(max_length=200)] = None,
) -> VisitRecorded:
    """Record a door-to-door visit that found nothing to report."""
    now = clock()
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    location = body.location or LocationIn()
    visited_at = min(body.visited_at or now, now)  # a phone's clock ahead is not believed
    if visited_at < now - OLDEST:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "visited_at: more than a year ago"
        )
    row = {
        "visit_id": new_id(),
        "visitor": caller.id,
        "visitor_name": caller.display_name or caller.name,
        "village": body.village,
        "households": body.households,
        "visited_at": visited_at,
        "recorded_at": now,
        "address": location.address or None,
        "lat": location.lat,
        "lon": location.lon,
        "idempotency_key": idempotency_key,
        "request_hash": digest,
    }
    async with sessions() as session, session.begin():
        stored = await _insert(session, row)
        if stored is None:  # the key was used: the visit it recorded, if the same
            stored = await _by_key(session, caller.id, idempotency_key)
            if stored is None or stored["request_hash"] != digest:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    "this Idempotency-Key was used for another visit",
                )
            response.status_code = status.HTTP_200_OK
    return VisitRecorded(
        visit_id=stored["visit_id"],
        village=stored["village"],
        households=stored["households"],
        visited_at=stored["visited_at"],
    )


@router.get("/visits/summary", responses=unprocessable("A range that cannot be counted"))
async def get_visit_summary(
    sessions: SessionsDep,
    ref: Reference,
    settings: SettingsDep,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
) -> VisitSummary:
    """Per village, for the days ``from`` to ``to`` (inclusive, the town's calendar): the
    visits that found nothing and their households, and the matters reported on visits."""
    if not FIRST_DAY <= start <= LAST_DAY or not FIRST_DAY <= end <= LAST_DAY:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"from, to: days from {FIRST_DAY} to {LAST_DAY}",
        )
    if end < start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to: before from")
    if (end - start).days > 366:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to: at most a year after from")
    zone = ZoneInfo(settings.timezone)
    low = datetime.combine(start, time(), zone)
    high = datetime.combine(end + timedelta(days=1), time(), zone)
    async with sessions() as session:
        found = await session.execute(
            select(visits.c.village, func.count(), func.sum(visits.c.households))
            .where(and_(visits.c.visited_at >= low, visits.c.visited_at < high))
            .group_by(visits.c.village)
        )
        counted: dict[str, list[int]] = {v: [n, int(h)] for v, n, h in found.all()}
        reported = await session.execute(
            select(reports.c.village, func.count())
            .where(
                and_(
                    reports.c.source == "visit",
                    reports.c.received_at >= low,
                    reports.c.received_at < high,
                )
            )
            .group_by(reports.c.village)
        )
        matters = {v: n for v, n in reported.all()}
    rows = [
        VillageVisits(
            village=code,
            name=village.name,
            visits=counted.get(code, [0, 0])[0],
            households=counted.get(code, [0, 0])[1],
            matters=matters.get(code, 0),
        )
        for code, village in ref.villages.items()
    ]
    return VisitSummary(
        start=start,
        end=end,
        villages=rows,
        visits=sum(r.visits for r in rows),
        households=sum(r.households for r in rows),
        matters=sum(r.matters for r in rows),
    )


async def _insert(session: AsyncSession, row: dict[str, Any]) -> dict[str, Any] | None:
    if row["idempotency_key"] is None:
        await session.execute(visits.insert().values(**row))
        return row
    statement = (
        insert(visits)
        .values(**row)
        .on_conflict_do_nothing(constraint="visits_visitor_idempotency_key")
        .returning(*visits.c)
    )
    inserted = (await session.execute(statement)).mappings().first()
    return dict(inserted) if inserted else None


async def _by_key(session: AsyncSession, visitor: str, key: str | None) -> dict[str, Any] | None:
    found = await session.execute(
        select(visits).where(and_(visits.c.visitor == visitor, visits.c.idempotency_key == key))
    )
    row = found.mappings().first()
    return dict(row) if row else None
