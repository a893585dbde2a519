"""The list's queries: filters, sorts and keyset pages, now or as of a past time, and one
matter (now, or as it stood then, folded again from the events this view recorded)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.search import bigrams, normalise
from minqing.services.projection.views.issues.fold import (
    IssueView,
    Recorded,
    fold,
    stored,
)
from minqing.services.projection.views.issues.tables import (
    FIELDS,
    issue_events,
    issue_versions,
    issues,
)
from minqing.shared.contract.envelope import event_class
from minqing.shared.identity.policy import Reach, anywhere, branch_of

_BRANCH = branch_of("")  # a village's party branch is its code and this


@dataclass(frozen=True)
class Reached:
    """The matters a caller reaches (issue 15): those assigned to one of ``units``, and those
    reported in one of ``villages`` (the villages whose party branch is among the units),
    whoever they are assigned to. ``Grant.reaches`` in SQL."""

    units: frozenset[str]
    villages: frozenset[str]

    @classmethod
    def of(cls, units: frozenset[str] | None) -> Reached | None:
        """What ``Grant.units()`` reaches; None (the whole town) for None."""
        if units is None:
            return None
        villages = {unit.removesuffix(_BRANCH) for unit in units if unit.endswith(_BRANCH)}
        return cls(frozenset(units), frozenset(villages))

    def where(self, t: Source) -> ColumnElement[bool]:
        if not self.units and not self.villages:
            return false()
        return or_(t.c.unit.in_(sorted(self.units)), t.c.village.in_(sorted(self.villages)))


@dataclass(frozen=True)
class IssueFilter:
    """What a supervisor narrows the list to; every field is optional."""

    status: str | None = None
    village: str | None = None
    unit: str | None = None
    category: str | None = None
    source: str | None = None
    responsible_person_id: str | None = None
    scale: str | None = None
    overdue_on: date | None = None  # only matters past their deadline on this date
    deadline_from: date | None = None
    deadline_to: date | None = None
    reported_from: datetime | None = None
    reported_to: datetime | None = None
    text: str | None = None  # free text, Chinese or not
    as_of: datetime | None = None  # the list as it stood then (None: now)
    # Only the matters the caller reaches (None: the whole town): decided, as for one matter
    # by id, on each matter's unit and village now, even in a list "as of" a past time.
    reached: Reached | None = None


Source = Table | Subquery


def source(f: IssueFilter) -> Source:
    """Where the filter's matters are: the list now, or each matter's state at ``as_of``
    (its current state if it began by then, else the earlier state in force then)."""
    if f.as_of is None:
        return issues
    then = f.as_of
    current = select(*(issues.c[n] for n in FIELDS)).where(issues.c.last_event_at <= then)
    earlier = select(*(issue_versions.c[n] for n in FIELDS)).where(
        issue_versions.c.valid_to > then, issue_versions.c.last_event_at <= then
    )
    return union_all(current, earlier).subquery("issues_then")


def filtered(query: Select[Any], f: IssueFilter, t: Source = issues) -> Select[Any]:
    """``query`` narrowed to the matters ``f`` selects, in ``t`` (``source(f)``)."""
    for column in (
        "status",
        "village",
        "unit",
        "category",
        "source",
        "responsible_person_id",
        "scale",
    ):
        value = getattr(f, column)
        if value is not None:
            query = query.where(t.c[column] == value)
    if f.overdue_on is not None:
        query = query.where(t.c.status.in_(("assigned", "reopened")), t.c.deadline < f.overdue_on)
    if f.deadline_from is not None:
        query = query.where(t.c.deadline >= f.deadline_from)
    if f.deadline_to is not None:
        query = query.where(t.c.deadline <= f.deadline_to)
    if f.reported_from is not None:
        query = query.where(t.c.reported_at >= f.reported_from)
    if f.reported_to is not None:
        query = query.where(t.c.reported_at < f.reported_to)
    if f.text:
        found = _text_match(f.text)
        if t is issues:
            query = query.where(*found)
        else:  # a matter's text never changes: matched on the list now
            query = query.where(t.c.issue_id.in_(select(issues.c.issue_id).where(*found)))
    if f.reached is not None:
        if t is issues:
            query = query.where(f.reached.where(issues))
        else:  # a matter out of reach now is out of reach in the past too (and back in it)
            reached_now = select(issues.c.issue_id).where(f.reached.where(issues))
            query = query.where(t.c.issue_id.in_(reached_now))
    return query


def _text_match(text: str) -> list[ColumnElement[bool]]:
    wanted = normalise(text)
    grams = bigrams(wanted)
    found = [func.strpos(issues.c.search_text, wanted) > 0]
    if grams:  # candidates through the index, confirmed on the text
        found.insert(0, issues.c.search_grams.contains(cast(grams, ARRAY(Text))))
    return found


Sort = Literal["newest", "oldest", "deadline", "lookback", "updated"]
_FAR = date(9999, 12, 31)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sort_key(sort: Sort, t: Source) -> tuple[ColumnElement[Any], bool]:
    """The expression a sort orders by (before the issue id), and whether descending."""
    if sort == "deadline":  # soonest first; matters without a deadline last
        return func.coalesce(t.c.deadline, _FAR), False
    if sort == "lookback":  # look-backs due soonest first (status=resolved: the board)
        return func.coalesce(t.c.lookback_due, _FAR), False
    if sort == "updated":
        return func.coalesce(t.c.last_event_at, _EPOCH), True
    return t.c.issue_id, sort == "newest"  # a ULID: the order of reporting


def _cursor_value(sort: Sort, view: IssueView) -> str:
    if sort == "deadline":
        return (view.deadline or _FAR).isoformat()
    if sort == "lookback":
        return (view.lookback_due or _FAR).isoformat()
    if sort == "updated":
        return (view.last_event_at or _EPOCH).isoformat()
    return view.issue_id


def encode_cursor(sort: Sort, view: IssueView) -> str:
    """Where the next page starts: after this matter, in this order (opaque to clients)."""
    raw = json.dumps([sort, _cursor_value(sort, view), view.issue_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


class BadCursor(ValueError):
    """A cursor that this list did not give out (or for another sort)."""


def decode_cursor(sort: Sort, cursor: str) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, value, issue_id = json.loads(base64.urlsafe_b64decode(padded))
        if kind != sort or not isinstance(issue_id, str):
            raise BadCursor("the cursor belongs to another sort order")
        if sort in ("deadline", "lookback"):
            return date.fromisoformat(value), issue_id
        if sort == "updated":
            return datetime.fromisoformat(value), issue_id
        return str(value), issue_id
    except BadCursor:
        raise
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise BadCursor("not a cursor this list gave out") from exc


async def list_issues(
    session: AsyncSession,
    f: IssueFilter,
    *,
    limit: int,
    offset: int = 0,
    sort: Sort = "newest",
    cursor: str | None = None,
    count: int | None = None,
) -> tuple[list[IssueView], int, str | None]:
    """One page of matters in the chosen order, how many match in all, counted up to
    ``count`` + 1 (0 without ``count``: an exact count reads every match), and the cursor of
    the next page (keyset: as fast on page 10,000 as on page 1)."""
    t = source(f)
    total = 0
    if count is not None:
        matches = filtered(select(literal(1)).select_from(t), f, t).limit(count + 1)
        total = int(await session.scalar(select(func.count()).select_from(matches.subquery())) or 0)
    key, descending = _sort_key(sort, t)
    query = filtered(select(*(t.c[n] for n in FIELDS)), f, t)
    if cursor is not None:
        value, issue_id = decode_cursor(sort, cursor)
        after = tuple_(key, t.c.issue_id)
        position = tuple_(literal(value), literal(issue_id))
        query = query.where(after < position if descending else after > position)
    if descending:
        query = query.order_by(key.desc(), t.c.issue_id.desc())
    else:
        query = query.order_by(key.asc(), t.c.issue_id.asc())
    rows = await session.execute(query.limit(limit + 1).offset(offset))
    views = [stored(row._asdict()) for row in rows]
    more = len(views) > limit
    views = views[:limit]
    next_cursor = encode_cursor(sort, views[-1]) if more and views else None
    return views, total, next_cursor


async def get_issue(
    session: AsyncSession, issue_id: str, reach: Reach = anywhere
) -> IssueView | None:
    """One matter now; None when there is none by that id, or the caller does not
    ``reach`` it (its unit and village now): the same answer, so that is not told."""
    row = (await session.execute(select(issues).where(issues.c.issue_id == issue_id))).first()
    if row is None:
        return None
    view = stored(row._asdict())
    return view if reach(view.unit, view.village) else None


async def issue_as_of(
    session: AsyncSession, issue_id: str, moment: datetime, reach: Reach = anywhere
) -> IssueView | None:
    """One matter as it stood at ``moment``: the events this view recorded up to then,
    folded. None as for ``get_issue``: whether the caller reaches it is decided on its unit
    and village now (a matter once another unit's and now theirs is theirs, all of it)."""
    if await get_issue(session, issue_id, reach) is None:
        return None
    stored = (await recorded(session, [issue_id])).get(issue_id, [])
    then = [r for r in stored if r.time <= moment]
    if not any(event_class(r.type) for r in then):
        return None
    view = fold(issue_id, then)
    return view if view.status is not None else None


async def recorded(session: AsyncSession, issue_ids: Sequence[str]) -> dict[str, list[Recorded]]:
    """The events this view recorded for some matters, for a re-fold."""
    e = issue_events.c
    rows = await session.execute(
        select(e.issue_id, e.event_id, e.epoch, e.seq, e.type, e.dataversion, e.time, e.data).where(
            e.issue_id == any_(bindparam("ids", type_=ARRAY(Text)))
        ),
        {"ids": list(issue_ids)},
    )
    found: dict[str, list[Recorded]] = {}
    for r in rows:
        found.setdefault(r.issue_id, []).append(
            Recorded(r.seq, r.type, r.dataversion, r.time, r.data, r.epoch, r.event_id)
        )
    return found
