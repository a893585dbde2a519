"""Projection's HTTP edge: what supervisors query.

One module-level router; each route reads what it needs through ``Annotated``
dependencies (``DeskDep``: the sessions, clock, time zone, names and count limit that
``app.py`` puts on ``app.state.desk``) and lets a domain error through: ``ERRORS`` maps them
to HTTP, registered once by ``app.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import AfterValidator, AwareDatetime, BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection import exports, people, stats, trends
from minqing.services.projection.sentences import Names, describe
from minqing.services.projection.views import history, issues
from minqing.services.projection.views.issues.output import IssueOut
from minqing.shared.contract.events import IssueStatus
from minqing.shared.contract.reference import Kind, active
from minqing.shared.domain.clock import Clock, local_date
from minqing.shared.domain.text import Line
from minqing.shared.identity.policy import Grant, Reach
from minqing.shared.identity.web import GrantDep
from minqing.shared.persistence.db import Sessions
from minqing.shared.web.deps import from_state
from minqing.shared.web.edge import IssueId
from minqing.shared.web.errors import ErrorStatuses, unprocessable

ONE_DAY = timedelta(days=1)
MAX_OFFSET = 1_000_000  # deeper pages are refused (422): narrow the filters instead


class NoSuchMatter(LookupError):
    """No matter by that id (at that time)."""

    def __init__(self) -> None:
        super().__init__("no such matter")


ERRORS: ErrorStatuses = {
    issues.BadCursor: status.HTTP_422_UNPROCESSABLE_CONTENT,
    trends.TooManyWeeks: status.HTTP_422_UNPROCESSABLE_CONTENT,
    NoSuchMatter: status.HTTP_404_NOT_FOUND,
}


def _optional_code(kind: Kind) -> Callable[[str | None], str | None]:
    """A query-parameter validator: absent, or a code of ``kind`` (categories and villages
    also by name or alias, as everywhere)."""

    def check(code: str | None) -> str | None:
        return None if code is None else active().resolve(kind, code)

    return check


class IssuePage(BaseModel):
    items: list[IssueOut]
    total: int  # matters in all, counted up to MINQING_LIST_COUNT_LIMIT
    total_capped: bool  # there are more than ``total`` (the statistics count them all)
    limit: int
    offset: int
    sort: str
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last


class HistoryEvent(BaseModel):
    position: int
    epoch: int
    id: str
    type: str
    time: datetime
    actor: str
    source: str
    dataversion: int
    correlationid: str
    causationid: str | None
    data: dict[str, Any]
    log_seq: int
    hash: str
    sentence: SentenceOut
    actor_name: SentenceOut  # who did it, in words (``actor`` is the stored id)


class SentenceOut(BaseModel):
    """What happened, in words: Chinese and English."""

    zh: str
    en: str


class History(BaseModel):
    issue_id: str
    events: list[HistoryEvent]


@dataclass(frozen=True)
class FilterParams:
    """The list's filters as given (dates in the town's time zone), shared by the list and
    its exports."""

    status: IssueStatus | None
    village: str | None
    unit: str | None
    category: str | None
    source: str | None
    responsible: str | None
    scale: str | None
    overdue: bool
    deadline_from: date | None
    deadline_to: date | None
    reported_from: date | None
    reported_to: date | None
    q: str | None
    as_of: datetime | None


def filter_params(
    status_: Annotated[IssueStatus | None, Query(alias="status")] = None,
    village: Annotated[str | None, Query(), AfterValidator(_optional_code("villages"))] = None,
    unit: Annotated[str | None, Query(), AfterValidator(_optional_code("units"))] = None,
    category: Annotated[str | None, Query(), AfterValidator(_optional_code("categories"))] = None,
    source: Annotated[str | None, Query(), AfterValidator(_optional_code("sources"))] = None,
    responsible: Annotated[Line | None, Query(max_length=100)] = None,
    scale: Literal["small", "major"] | None = None,
    overdue: bool = False,
    deadline_from: date | None = None,
    deadline_to: date | None = None,
    reported_from: date | None = None,
    reported_to: date | None = None,
    q: Annotated[Line | None, Query(min_length=1, max_length=100)] = None,
    as_of: Annotated[
        AwareDatetime | None,
        Query(description="The answer as it stood at this time (with its offset)."),
    ] = None,
) -> FilterParams:
    return FilterParams(
        status_,
        village,
        unit,
        category,
        source,
        responsible,
        scale,
        overdue,
        deadline_from,
        deadline_to,
        reported_from,
        reported_to,
        q,
        as_of,
    )


Filters = Annotated[FilterParams, Depends(filter_params)]


@dataclass(frozen=True)
class Desk:
    """What the routes read from, bound once in ``app.py``; the list counts up to ``cap``."""

    sessions: Sessions
    clock: Clock
    timezone: str
    names: Names
    cap: int

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def today(self) -> date:
        return local_date(self.clock(), self.timezone)

    def day_of(self, p: FilterParams) -> date:
        """The day the answer is for: today, or the day of ``as_of`` in the town."""
        return self.today() if p.as_of is None else local_date(p.as_of, self.timezone)

    def start_of(self, day: date) -> datetime:
        """Midnight of ``day`` in the town's time zone."""
        return datetime.combine(day, time.min, tzinfo=self.zone)

    def to_filter(self, p: FilterParams, grant: Grant) -> issues.IssueFilter:
        """The list's filter: what was asked, within what the caller reaches."""
        return issues.IssueFilter(
            status=p.status,
            village=p.village,
            unit=p.unit,
            category=p.category,
            source=p.source,
            responsible_person_id=p.responsible,
            scale=p.scale,
            overdue_on=self.day_of(p) if p.overdue else None,
            deadline_from=p.deadline_from,
            deadline_to=p.deadline_to,
            reported_from=None if p.reported_from is None else self.start_of(p.reported_from),
            reported_to=None if p.reported_to is None else self.start_of(p.reported_to + ONE_DAY),
            text=p.q,
            as_of=p.as_of,
            reached=issues.Reached.of(grant.units()),
        )

    def attachment(self, extension: str) -> str:
        day = self.today().isoformat()
        plain, chinese = f"ledger-{day}.{extension}", quote(f"台账-{day}.{extension}")
        return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{chinese}"


DeskDep = Annotated[Desk, Depends(from_state("desk"))]
router = APIRouter(prefix="/api/v1", tags=["projection"])


@router.get("/issues", responses=unprocessable("A bad filter or cursor"))
async def list_issues(
    desk: DeskDep,
    grant: GrantDep,
    params: Filters,
    sort: issues.Sort = "newest",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> IssuePage:
    """The list (台账). Filters: status, village, unit, category, source, responsible
    person id, overdue, deadline and report date ranges (report dates in the town's
    time zone, `reported_to` inclusive), and free text `q` (Chinese too: 路灯 finds
    石官路路灯不亮). Sorted `newest` (default), `oldest`, `deadline` (soonest first),
    `lookback` or `updated`; page with `cursor` (the previous page's `next_cursor`).
    With `as_of`, the list as it stood at that time (each matter in its state then).
    Only the matters the caller reaches (a unit's staff: their unit's, and a village
    branch's also its village's; decided on each matter's unit and village now)."""
    f = desk.to_filter(params, grant)
    async with desk.sessions() as session:
        views, total, after = await issues.list_issues(
            session, f, limit=limit, offset=offset, sort=sort, cursor=cursor, count=desk.cap
        )
    day = desk.day_of(params)
    return IssuePage(
        items=[IssueOut.of(v, day) for v in views],
        total=min(total, desk.cap),
        total_capped=total > desk.cap,
        limit=limit,
        offset=offset,
        sort=sort,
        next_cursor=after,
    )


@router.get("/stats")
async def get_stats(
    desk: DeskDep, grant: GrantDep, request: Request, params: Filters
) -> dict[str, Any]:
    """The figures for the matters the list's filters select: counts by status, source,
    category, village and unit; closed in the loop; overdue; the three rates of the
    12345 world (response, resolution, satisfaction); on-time rate; median days to
    resolve; look-back pass rate; funds by source and status. Each count links to the
    list of matters behind it (``list``). With `as_of`, the figures as they stood at
    that time (so last month's ranking is reproduced exactly)."""
    base = dict(request.query_params.items())
    async with desk.sessions() as session:
        figures = await stats.statistics(
            session, desk.to_filter(params, grant), base, desk.day_of(params), desk.timezone
        )
        responsible = await people.responsible_names(
            session, desk.names, figures.by.get("responsible_person_id", {})
        )
    # the people counted by, by name (the counts are by id: a name may change)
    return {**asdict(figures), "names": {"people": responsible}}


class WeekOut(BaseModel):
    start: date
    end: date
    received: int
    closed: int
    overdue: int


class TrendOut(BaseModel):
    weeks: list[WeekOut]
    overdue_direction: trends.Direction


@router.get("/stats/weekly", responses=unprocessable("A range of no week or of over 53"))
async def get_weekly(
    desk: DeskDep,
    grant: GrantDep,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    village: Annotated[str | None, Query(), AfterValidator(_optional_code("villages"))] = None,
    unit: Annotated[str | None, Query(), AfterValidator(_optional_code("units"))] = None,
) -> TrendOut:
    """Trends, week by week (Monday to Sunday in the town): matters received, loops
    closed, and matters overdue at the end of each week (now, for this week), from the
    week of `from` to the week of `to` (default: the 12 weeks to today; at most 53).
    Only the matters the caller reaches, as the list; `village` and `unit` narrow them."""
    last = last or desk.today()
    first = first or last - timedelta(weeks=11)
    f = issues.IssueFilter(village=village, unit=unit, reached=issues.Reached.of(grant.units()))
    async with desk.sessions() as session:
        trend = await trends.weekly(session, f, first, last, desk.clock(), desk.timezone)
    return TrendOut.model_validate(asdict(trend))


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/issues/export.csv", response_class=StreamingResponse)
async def export_csv(desk: DeskDep, grant: GrantDep, params: Filters) -> StreamingResponse:
    """The list with these filters as CSV (UTF-8 with BOM, Chinese headers), newest
    first, at most 200,000 rows; only the matters the caller reaches, as the list."""
    cols = exports.columns(desk.names, desk.zone, desk.day_of(params))
    matters = exports.matters(desk.sessions, desk.to_filter(params, grant))
    return StreamingResponse(
        exports.csv_lines(matters, cols),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": desk.attachment("csv")},
    )


@router.get(
    "/issues/export.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def export_xlsx(desk: DeskDep, grant: GrantDep, params: Filters) -> Response:
    """The list with these filters as an Excel workbook (sheet 台账, Chinese headers); only
    the matters the caller reaches, as the list."""
    cols = exports.columns(desk.names, desk.zone, desk.day_of(params))
    matters = exports.matters(desk.sessions, desk.to_filter(params, grant))
    body = await exports.xlsx_bytes(matters, cols)
    return Response(
        body,
        media_type=XLSX,
        headers={"Content-Disposition": desk.attachment("xlsx")},
    )


@router.get("/issues/{issue_id}", responses={404: {"description": "No such matter (then)"}})
async def get_issue(
    desk: DeskDep, grant: GrantDep, issue_id: IssueId, as_of: AwareDatetime | None = None
) -> IssueOut:
    """The current state of one matter; with ``as_of`` (a time with its offset), the
    state as it stood then: its events up to that moment, folded again. A matter the
    caller does not reach is a 404, as an unknown one."""
    async with desk.sessions() as session:
        if as_of is None:
            view = await issues.get_issue(session, issue_id, grant.reaches)
        else:
            view = await issues.issue_as_of(session, issue_id, as_of, grant.reaches)
    if view is None:
        raise NoSuchMatter()
    return IssueOut.of(view, desk.today() if as_of is None else local_date(as_of, desk.timezone))


@router.get(
    "/issues/{issue_id}/history.html",
    response_class=HTMLResponse,
    responses={404: {"description": "No such matter"}},
)
async def get_history_page(desk: DeskDep, grant: GrantDep, issue_id: IssueId) -> HTMLResponse:
    """The audit trail as a page to print (or save as PDF from the browser). A matter the
    caller does not reach is a 404, as an unknown one."""
    async with desk.sessions() as session:
        view = await issues.get_issue(session, issue_id, grant.reaches)
        events = await history.trail(session, issue_id) if view is not None else []
        names = await people.of_trail(session, desk.names, events)
    if view is None or not events:
        raise NoSuchMatter()
    return HTMLResponse(exports.history_page(view, events, names, desk.zone))


@router.get("/issues/{issue_id}/history", responses={404: {"description": "No such matter"}})
async def get_history(desk: DeskDep, grant: GrantDep, issue_id: IssueId) -> History:
    """The audit trail: every event of the matter, in stream order. A matter the caller
    does not reach is a 404, as an unknown one."""
    async with desk.sessions() as session:
        events = await reached_trail(session, issue_id, grant.reaches)
        names = await people.of_trail(session, desk.names, events)
    if not events:
        raise NoSuchMatter()
    return History(issue_id=issue_id, events=[_history_event(e, names) for e in events])


async def reached_trail(session: AsyncSession, issue_id: str, reach: Reach) -> list[dict[str, Any]]:
    """The matter's audit trail, or nothing when the caller does not ``reach`` the matter:
    decided on its unit and village now in the list (as for the matter itself), or, when
    the list does not have it (``MINQING_PROJECTION_VIEWS=history``: the list is not kept
    here; or it has not folded the matter yet), as its own trail tells them (its latest
    assignment's unit, its report's village)."""
    events = await history.trail(session, issue_id)
    if not events:
        return []
    view = await issues.get_issue(session, issue_id)
    unit, village = (view.unit, view.village) if view is not None else history.whereabouts(events)
    return events if reach(unit, village) else []


def _history_event(e: dict[str, Any], names: Names) -> HistoryEvent:
    sentence = describe(e["type"], e["dataversion"], e["data"], names)
    zh, en = names.who(e["actor"])
    return HistoryEvent(
        **e, sentence=SentenceOut(**asdict(sentence)), actor_name=SentenceOut(zh=zh, en=en)
    )
