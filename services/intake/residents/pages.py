"""The residents' public pages, no login: report a matter (``/report``, through the Open311
POST), follow it by its reference (``/follow``), and rate how it was handled from the link
in a reply (``/feedback/<token>``). Static HTML, CSS and plain JavaScript, as the desk is,
under the front door's Content-Security-Policy (no inline script or style).

The two JSON answers the pages read tell a resident only what the town says of the matter,
in words: category, village, unit by name, dates, the stage, the unit's summary and the
look-back's notes. Never a person, a code, another reporter's words or contact.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from minqing.services.intake.deps import ClockDep, Reference, SessionsDep, SettingsDep
from minqing.services.intake.residents import store
from minqing.services.intake.residents.api import SupervisionDep, Token
from minqing.services.intake.residents.domain import expired_sentence
from minqing.services.intake.residents.handlers import token_hash
from minqing.shared.contract.reference import ReferenceData

STATIC = Path(__file__).parent / "static"
HTML = "text/html; charset=utf-8"
# The pages' own files, by name: nothing else under /residents/.
FILES = {"residents.js": "text/javascript; charset=utf-8", "residents.css": "text/css"}
# A page may be kept a little; its files change with the version, like the desk's.
NO_STORE = {"Cache-Control": "no-store"}

Reference_ = Annotated[str, PathParam(min_length=26, max_length=26, pattern=r"^[0-9A-Za-z]+$")]
Stage = Literal["received", "assigned", "resolved", "closed", "reopened"]


class Words(BaseModel):
    """A name in both languages."""

    zh: str
    en: str


class Progress(BaseModel):
    """Where a resident's report stands, in words (the follow page)."""

    reference: str
    received: date
    category: Words
    village: Words
    stage: Stage
    unit: Words | None  # who handles it, by name
    deadline: date | None  # by when, on the working-day calendar
    summary: str | None  # what the unit did, in its words
    lookback_due: date | None
    notes: str | None  # what the look-back visit found
    joined: bool  # the report joined a matter already reported by others


class FeedbackAsked(BaseModel):
    """What the feedback page shows before the resident rates."""

    answered: bool
    stage: Literal["resolved", "closed"]
    category: Words
    village: Words
    summary: str | None


router = APIRouter(tags=["residents' pages"])


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=HTML, headers=NO_STORE)


@router.get("/report", response_class=FileResponse, responses={200: {"content": {HTML: {}}}})
async def report_page() -> FileResponse:
    """The page to report a matter, no login (it posts to the Open311 channel)."""
    return _page("report.html")


@router.get("/follow", response_class=FileResponse, responses={200: {"content": {HTML: {}}}})
async def follow_page() -> FileResponse:
    """The page to follow a matter by its reference (``?ref=``)."""
    return _page("follow.html")


@router.get(
    "/feedback/{token}", response_class=FileResponse, responses={200: {"content": {HTML: {}}}}
)
async def feedback_page(token: str) -> FileResponse:
    """The page a reply's feedback link opens: a score of 1 to 5 and a comment (a token
    that is not one is said so on the page, in words)."""
    return _page("feedback.html")


@router.get(
    "/residents/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {kind.split(";")[0]: {} for kind in FILES.values()}},
        404: {"description": "No such file"},
    },
)
async def page_file(name: str) -> FileResponse:
    """The pages' script and stylesheet."""
    if name not in FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return FileResponse(STATIC / name, media_type=FILES[name])


@router.get("/api/v1/progress/{reference}", responses={404: {"description": "No such report"}})
async def get_progress(
    reference: Reference_, sessions: SessionsDep, ref: Reference, settings: SettingsDep
) -> Progress:
    """Where the report with this reference (its Open311 service_request_id) stands."""
    async with sessions() as session:
        row = await store.progress_of(session, reference.upper())
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no report has this reference")
    return progress(row, ref, ZoneInfo(settings.timezone))


class FeedbackExpiredOut(BaseModel):
    """A link past its time: the sentence, and its last day for the page to say kindly."""

    detail: str
    expired_on: date


@router.get(
    "/api/v1/feedback/{token}",
    response_model=FeedbackAsked,
    responses={
        303: {"description": "A browser (asking for HTML) is sent to the feedback page"},
        404: {"description": "No reply carries this token"},
        410: {
            "description": "The link expired (MINQING_FEEDBACK_DAYS after the reply was sent)",
            "model": FeedbackExpiredOut,
        },
    },
)
async def get_feedback(
    token: Token,
    request: Request,
    sessions: SessionsDep,
    ref: Reference,
    residents: SupervisionDep,
    clock: ClockDep,
) -> FeedbackAsked | Response:
    """What a reply's token asks feedback about, and whether it was given already; a link
    not answered and past its time is a 410 saying when it expired. A browser opening a
    link sent before the feedback page existed is sent to the page."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"/feedback/{token}", status.HTTP_303_SEE_OTHER)
    async with sessions() as session:
        row = await store.feedback_asked(session, token_hash(token))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no reply carries this token")
    terms = residents.feedback
    if row["answered"] is None and terms.expired(row["sent_at"], clock()):
        last = terms.last_day(row["sent_at"])
        assert last is not None  # an expired link was sent
        gone = FeedbackExpiredOut(detail=expired_sentence(terms, last), expired_on=last)
        return JSONResponse(gone.model_dump(mode="json"), status.HTTP_410_GONE)
    return FeedbackAsked(
        answered=row["answered"] is not None,
        stage=row["stage"],
        category=words(ref, "categories", row["category"]),
        village=words(ref, "villages", row["village"]),
        summary=row["summary"] or None,
    )


# ------------------------------------------------------------------------- pure


def progress(row: dict[str, Any], ref: ReferenceData, zone: ZoneInfo) -> Progress:
    """A report's row (``store.progress_of``) in words."""
    answer = row["stage"]  # the residents' answer, kept by its own consumer
    stage: Stage
    if answer in ("resolved", "closed", "reopened"):
        # the answer leads where there is one: the matter's status is kept by another
        # consumer and may be a step ahead of it, so a page never says "closed" before it
        # can say what the look-back found
        stage = answer
    elif row["status"] == "closed":
        stage = "closed"
    elif row["unit"]:
        stage = "assigned"
    else:
        stage = "received"
    received: datetime = row["received_at"]
    return Progress(
        reference=row["report_id"],
        received=received.astimezone(zone).date(),
        category=words(ref, "categories", row["category"]),
        village=words(ref, "villages", row["village"]),
        stage=stage,
        unit=unit_words(ref, row["unit"]) if row["unit"] else None,
        deadline=row["deadline"] if stage in ("assigned", "reopened") else None,
        summary=row["summary"] or None,
        lookback_due=row["lookback_due"] if stage == "resolved" else None,
        notes=(row["notes"] or None) if stage in ("closed", "reopened") else None,
        joined=row["issue_id"] != row["report_id"],
    )


def parts(name: str) -> Words:
    """``"三岐村 Sanqi Village"`` -> 三岐村 / Sanqi Village: the reference data's names are
    Chinese, a space, then English; a name in one language serves for both."""
    first, _, rest = name.partition(" ")
    if rest and not first.isascii():
        return Words(zh=first, en=rest)
    return Words(zh=name, en=name)


def words(ref: ReferenceData, kind: Literal["categories", "villages"], code: str) -> Words:
    found = (ref.categories if kind == "categories" else ref.villages).get(code)
    # A code the reference data no longer has is not shown: a resident cannot read it.
    return parts(found.name) if found else Words(zh="其他", en="other")


def unit_words(ref: ReferenceData, unit: str) -> Words:
    """A unit by name: a town office, or a village's party branch."""
    if unit in ref.units:
        return parts(ref.units[unit].name)
    for code, village in ref.villages.items():
        if village.branch(code) == unit:
            name = parts(village.name)
            return Words(zh=f"{name.zh}党组织", en=f"{name.en} party branch")
    return Words(zh="镇里的承办单位", en="the town's responsible office")
