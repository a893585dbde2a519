"""The list of matters (台账): each matter's current state, folded incrementally.

A batch loads the touched matters' views in one query, applies each event in stream
order (parsed once), and upserts the changed views in one executemany. Only an event that
arrives behind the view's last position (a redelivery after a failure) triggers a re-fold
of that matter from the events this view recorded (``issue_events``, written in the same
transaction as the list's rows): the list reads no other view's tables, so it can be run
(``MINQING_PROJECTION_VIEWS=issues``) and rebuilt without the audit trail.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    Select,
    Subquery,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.domain import (
    IssueView,
    Recorded,
    Version,
    fold,
    fold_versions,
    step,
    stored,
    until,
)
from minqing.services.projection.schema import metadata
from minqing.services.projection.search import bigrams, normalise
from minqing.services.projection.search import searchable as search_columns
from minqing.shared.contract.envelope import NewerVersion, UnreadableEvent, decode, event_class
from minqing.shared.contract.events import Event
from minqing.shared.messaging.consumer import Delivery, Outcome
from minqing.shared.persistence.bulk import (
    column_names,
    executemany,
    fetch,
    insert_sql,
    plain_insert_sql,
    select_sql,
)

ORDERED = False  # a late event re-folds its matter: any delivery order will do
NAME = "issues"

issues = Table(
    "issues",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("status", Text),
    Column("title", Text),
    Column("description", Text),
    Column("category", Text),
    Column("village", Text),
    Column("source", Text),
    Column("reporter_ref", Text),
    Column("reporter_phone_masked", Text),
    Column("external_ref", Text),
    Column("split_from", Text),
    Column("scale", Text),
    Column("duplicate_count", Integer, nullable=False),
    Column("address", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("unit", Text),
    Column("responsible_person_id", Text),
    Column("responsible_person_name", Text),
    Column("deadline", Date),
    Column("deadline_calendar", Text),
    Column("deadline_provisional", Boolean, nullable=False),
    Column("deadline_note", Text),
    Column("assignment_no", Integer, nullable=False),
    Column("lookback_due", Date),
    Column("lookback_due_provisional", Boolean, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("escalated_to", Text),
    Column("reported_at", DateTime(timezone=True)),
    Column("assigned_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_event_at", DateTime(timezone=True)),
    Column("last_epoch", Integer, nullable=False),
    Column("last_position", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False),
    # Free text (services/projection/search.py): the normalised text and its character pairs.
    Column("search_text", Text, nullable=False),
    Column("search_grams", ARRAY(Text), nullable=False),
)
Index("issues_status", issues.c.status)
Index("issues_village", issues.c.village)
Index("issues_unit", issues.c.unit)
Index("issues_category", issues.c.category)
Index("issues_search", issues.c.search_grams, postgresql_using="gin")
_DERIVED = ["search_text", "search_grams"]

# Every earlier state of each matter (all the list's columns but the search ones), in force
# from its ``last_event_at`` until ``valid_to``: the list and statistics "as of" a past time.
issue_versions = Table(
    "issue_versions",
    metadata,
    *(
        Column(
            c.name, c.type, nullable=c.nullable, primary_key=c.name in ("issue_id", "event_count")
        )
        for c in issues.c
        if c.name not in _DERIVED
    ),
    Column("valid_to", DateTime(timezone=True), nullable=False),
)
Index("issue_versions_valid", issue_versions.c.valid_to)
# Every event this view was given, once by id: what a late event's re-fold and a matter
# "as of" a past time fold again (any type: an unknown one still counts in ``event_count``).
issue_events = Table(
    "issue_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("issue_id", Text, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("dataversion", Integer, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("data", JSONB, nullable=False),
)
Index("issue_events_issue", issue_events.c.issue_id, issue_events.c.epoch, issue_events.c.seq)
# What this read model owns: a rebuild replaces exactly these.
TABLES = (issues, issue_versions, issue_events)

_FIELDS = [f.name for f in fields(IssueView)]
_UPSERT = insert_sql(issues, "issue_id", update=True)
# The same for a matter whose text did not change: its search columns stay as they are (the
# values given are never used: the matter's row exists).
_UPSERT_KEEP_SEARCH = insert_sql(issues, "issue_id", update=True, keep=_DERIVED)
_COLUMNS = column_names(issues, "issue_id")
assert set(_COLUMNS) == set(_FIELDS) | set(_DERIVED), "the issues table and IssueView must match"
_VERSION_COLUMNS = [*_FIELDS, "valid_to"]
_INSERT_VERSIONS = plain_insert_sql(issue_versions, _VERSION_COLUMNS)
_EVENT_COLUMNS = column_names(issue_events, "event_id")
_INSERT_EVENTS = insert_sql(issue_events, "event_id", update=False)
_DATA = TypeAdapter(dict[str, Any])  # serialises ``data`` in Rust, like the envelope
_FORGET_VERSIONS = delete(issue_versions).where(
    issue_versions.c.issue_id == any_(bindparam("ids", type_=ARRAY(Text)))
)


async def apply_batch(
    session: AsyncSession, deliveries: Sequence[Delivery]
) -> Mapping[str, Outcome]:
    """Fold a batch into the views it touches: a handful of statements whatever its size."""
    outcomes: dict[str, Outcome] = {}
    touched = list(dict.fromkeys(d.envelope.subject for d in deliveries))
    views = await _load(session, touched)
    stored_text = {issue_id: _text(view) for issue_id, view in views.items()}
    changed: set[str] = set()
    behind: dict[str, list[Delivery]] = {}
    versions: list[tuple[str, Version]] = []  # states this batch ended
    for delivery in deliveries:
        issue_id = delivery.envelope.subject
        try:
            event = _read(delivery)
        except NewerVersion as exc:
            outcomes[delivery.envelope.id] = Outcome(str(exc), waiting=True)
            continue
        view = views.get(issue_id)
        if view is None and event is None:
            continue  # an unknown type never makes a matter appear in the list
        view = view or IssueView(issue_id=issue_id)
        if (delivery.epoch, delivery.position) <= view.at:
            behind.setdefault(issue_id, []).append(delivery)
            continue
        views[issue_id] = step(view, event, _record(delivery))
        if view.status is not None:
            versions.append((issue_id, (view, until(views[issue_id]))))
        changed.add(issue_id)
    if behind:
        batch = {i: [d for d in deliveries if d.envelope.subject == i] for i in behind}
        refolded = await _refold(session, batch)
        versions = [v for v in versions if v[0] not in behind]  # the re-fold has them all
        for issue_id, (view, earlier) in refolded.items():
            views[issue_id] = view
            versions.extend((issue_id, v) for v in earlier)
        await session.execute(_FORGET_VERSIONS, {"ids": list(behind)})
        changed.update(behind)
    rows, same_text = [], []
    for i in changed:
        view = views.get(i)
        if view is None or view.status is None:
            continue
        if stored_text.get(i) == _text(view):
            same_text.append(_row(view, searchable=False))
        else:
            rows.append(_row(view))
    await executemany(session, _UPSERT, rows)
    await executemany(session, _UPSERT_KEEP_SEARCH, same_text)
    await executemany(session, _INSERT_VERSIONS, [_version_row(v) for _, v in versions])
    # each event once: a copy already recorded (a redelivery) is left as it is
    await executemany(session, _INSERT_EVENTS, [event_row(d) for d in deliveries])
    return outcomes


def event_row(delivery: Delivery) -> tuple[Any, ...]:
    """The delivery as an ``issue_events`` row, in the insert's column order."""
    e = delivery.envelope
    values = {
        "event_id": e.id,
        "issue_id": e.subject,
        "epoch": delivery.epoch,
        "seq": delivery.position,
        "type": e.type,
        "dataversion": e.dataversion,
        "time": e.time,
        "data": _DATA.dump_json(e.data).decode(),
    }
    return tuple(values[c] for c in _EVENT_COLUMNS)


def _read(delivery: Delivery) -> Event | None:
    """The known event, tolerantly; unknown types and unreadable data count as no event."""
    try:
        return decode(delivery.envelope)
    except UnreadableEvent:
        return None


def _record(delivery: Delivery) -> Recorded:
    e = delivery.envelope
    return Recorded(delivery.position, e.type, e.dataversion, e.time, e.data, delivery.epoch, e.id)


# One statement text whatever the batch size (prepared once), run straight on asyncpg.
_SELECT_MANY = select_sql(issues, _FIELDS, "issue_id = any($1::text[])")


async def _load(session: AsyncSession, issue_ids: list[str]) -> dict[str, IssueView]:
    rows = await fetch(session, _SELECT_MANY, issue_ids)
    return {row["issue_id"]: stored(row) for row in rows}


async def _refold(
    session: AsyncSession, behind: dict[str, list[Delivery]]
) -> dict[str, tuple[IssueView, list[Version]]]:
    """Matters that got an event behind their position: fold them again from the events
    this view recorded plus this batch's events of theirs, with every earlier state."""
    stored = await recorded(session, list(behind))
    views = {}
    for issue_id, late in behind.items():
        records = {r.event_id: r for r in stored.get(issue_id, [])}
        for delivery in late:
            records.setdefault(delivery.envelope.id, _record(delivery))
        known = [r for r in records.values() if event_class(r.type) is not None]
        if known:
            views[issue_id] = fold_versions(issue_id, records.values())
    return views


def _version_row(version: Version) -> tuple[Any, ...]:
    view, valid_to = version
    return (*(getattr(view, name) for name in _FIELDS), valid_to)


def _text(view: IssueView) -> tuple[str | None, ...]:
    """What free text searches in a matter."""
    return (view.title, view.description, view.address, view.external_ref)


_UNSEARCHED: tuple[str, list[str]] = ("", [])


def _row(view: IssueView, *, searchable: bool = True) -> tuple[Any, ...]:
    """The view as a row in the upsert's column order, with its search columns (computed
    only when ``searchable``: they are kept as stored when its text did not change)."""
    text, grams = search_columns(_text(view)) if searchable else _UNSEARCHED
    derived = {"search_text": text, "search_grams": grams}
    return tuple(derived[name] if name in derived else getattr(view, name) for name in _COLUMNS)


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


Source = Table | Subquery


def source(f: IssueFilter) -> Source:
    """Where the filter's matters are: the list now, or each matter's state at ``as_of``
    (its current state if it began by then, else the earlier state in force then)."""
    if f.as_of is None:
        return issues
    then = f.as_of
    current = select(*(issues.c[n] for n in _FIELDS)).where(issues.c.last_event_at <= then)
    earlier = select(*(issue_versions.c[n] for n in _FIELDS)).where(
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
    query = filtered(select(*(t.c[n] for n in _FIELDS)), f, t)
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


async def get_issue(session: AsyncSession, issue_id: str) -> IssueView | None:
    row = (await session.execute(select(issues).where(issues.c.issue_id == issue_id))).first()
    return stored(row._asdict()) if row else None


async def issue_as_of(session: AsyncSession, issue_id: str, moment: datetime) -> IssueView | None:
    """One matter as it stood at ``moment``: the events this view recorded up to then,
    folded."""
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
