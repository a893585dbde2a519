"""Projection's HTTP edge: what supervisors query."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import AfterValidator, AwareDatetime, BaseModel

from minqing.services.projection import exports, stats
from minqing.services.projection.domain import IssueView
from minqing.services.projection.sentences import Names, describe
from minqing.services.projection.views import history, issues
from minqing.services.projection.views.issues.output import IssueOut
from minqing.shared.contract.events import IssueStatus
from minqing.shared.contract.reference import Kind, active
from minqing.shared.domain.clock import Clock, local_date
from minqing.shared.domain.text import Line
from minqing.shared.persistence.db import Sessions
from minqing.shared.web.edge import IssueId

ONE_DAY = timedelta(days=1)
MAX_OFFSET = 1_000_000  # deeper pages are refused (422): narrow the filters instead


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


def build_router(
    sessions: Sessions, clock: Clock, timezone: str, names: Names, cap: int
) -> APIRouter:
    """The list, statistics, exports and audit trails; the list counts up to ``cap``."""
    router = APIRouter(prefix="/api/v1", tags=["projection"])

    def today() -> date:
        return local_date(clock(), timezone)

    zone = ZoneInfo(timezone)

    def start_of(day: date) -> datetime:
        """Midnight of ``day`` in the town's time zone."""
        return datetime.combine(day, time.min, tzinfo=zone)

    def out(view: IssueView, on: date | None = None) -> IssueOut:
        return IssueOut.of(view, on or today())

    def day_of(p: FilterParams) -> date:
        """The day the answer is for: today, or the day of ``as_of`` in the town."""
        return today() if p.as_of is None else local_date(p.as_of, timezone)

    def to_filter(p: FilterParams) -> issues.IssueFilter:
        return issues.IssueFilter(
            status=p.status,
            village=p.village,
            unit=p.unit,
            category=p.category,
            source=p.source,
            responsible_person_id=p.responsible,
            scale=p.scale,
            overdue_on=day_of(p) if p.overdue else None,
            deadline_from=p.deadline_from,
            deadline_to=p.deadline_to,
            reported_from=None if p.reported_from is None else start_of(p.reported_from),
            reported_to=None if p.reported_to is None else start_of(p.reported_to + ONE_DAY),
            text=p.q,
            as_of=p.as_of,
        )

    @router.get("/issues", responses={422: {"description": "A bad filter or cursor"}})
    async def list_issues(
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
        With `as_of`, the list as it stood at that time (each matter in its state then)."""
        f = to_filter(params)
        try:
            async with sessions() as session:
                views, total, after = await issues.list_issues(
                    session, f, limit=limit, offset=offset, sort=sort, cursor=cursor, count=cap
                )
        except issues.BadCursor as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        return IssuePage(
            items=[out(v, day_of(params)) for v in views],
            total=min(total, cap),
            total_capped=total > cap,
            limit=limit,
            offset=offset,
            sort=sort,
            next_cursor=after,
        )

    @router.get("/stats")
    async def get_stats(request: Request, params: Filters) -> dict[str, Any]:
        """The figures for the matters the list's filters select: counts by status, source,
        category, village and unit; closed in the loop; overdue; the three rates of the
        12345 world (response, resolution, satisfaction); on-time rate; median days to
        resolve; look-back pass rate; funds by source and status. Each count links to the
        list of matters behind it (``list``). With `as_of`, the figures as they stood at
        that time (so last month's ranking is reproduced exactly)."""
        base = {k: v for k, v in request.query_params.items()}
        async with sessions() as session:
            figures = await stats.statistics(
                session, to_filter(params), base, day_of(params), timezone
            )
        return asdict(figures)

    @router.get("/issues/export.csv", response_class=StreamingResponse)
    async def export_csv(params: Filters) -> StreamingResponse:
        """The list with these filters as CSV (UTF-8 with BOM, Chinese headers), newest
        first, at most 200,000 rows."""
        cols = exports.columns(names, zone, day_of(params))
        return StreamingResponse(
            exports.csv_lines(exports.matters(sessions, to_filter(params)), cols),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": _attachment("csv")},
        )

    @router.get("/issues/export.xlsx")
    async def export_xlsx(params: Filters) -> Response:
        """The list with these filters as an Excel workbook (sheet 台账, Chinese headers)."""
        cols = exports.columns(names, zone, day_of(params))
        body = await exports.xlsx_bytes(exports.matters(sessions, to_filter(params)), cols)
        return Response(
            body,
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": _attachment("xlsx")},
        )

    def _attachment(extension: str) -> str:
        day = today().isoformat()
        plain, chinese = f"ledger-{day}.{extension}", quote(f"台账-{day}.{extension}")
        return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{chinese}"

    @router.get("/issues/{issue_id}", responses={404: {"description": "No such matter (then)"}})
    async def get_issue(issue_id: IssueId, as_of: AwareDatetime | None = None) -> IssueOut:
        """The current state of one matter; with ``as_of`` (a time with its offset), the
        state as it stood then: its events up to that moment, folded again."""
        async with sessions() as session:
            if as_of is None:
                view = await issues.get_issue(session, issue_id)
            else:
                view = await issues.issue_as_of(session, issue_id, as_of)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such matter")
        return out(view, local_date(as_of, timezone) if as_of else None)

    @router.get(
        "/issues/{issue_id}/history.html",
        response_class=HTMLResponse,
        responses={404: {"description": "No such matter"}},
    )
    async def get_history_page(issue_id: IssueId) -> HTMLResponse:
        """The audit trail as a page to print (or save as PDF from the browser)."""
        async with sessions() as session:
            view = await issues.get_issue(session, issue_id)
            events = await history.trail(session, issue_id)
        if view is None or not events:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such matter")
        return HTMLResponse(exports.history_page(view, events, names, zone))

    @router.get("/issues/{issue_id}/history", responses={404: {"description": "No such matter"}})
    async def get_history(issue_id: IssueId) -> History:
        """The audit trail: every event of the matter, in stream order."""
        async with sessions() as session:
            events = await history.trail(session, issue_id)
        if not events:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such matter")
        return History(
            issue_id=issue_id,
            events=[
                HistoryEvent(
                    **e,
                    sentence=SentenceOut(
                        **asdict(describe(e["type"], e["dataversion"], e["data"], names))
                    ),
                )
                for e in events
            ],
        )

    return router
