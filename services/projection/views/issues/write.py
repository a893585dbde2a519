"""The list's consumer: a batch of events folded into the matters they touch.

A batch loads the touched matters' views in one query, applies each event in stream
order (parsed once), and upserts the changed views in one executemany. Only an event that
arrives behind the view's last position (a redelivery after a failure) triggers a re-fold
of that matter from the events this view recorded (``issue_events``, written in the same
transaction as the list's rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    Text,
    any_,
    bindparam,
    delete,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.search import searchable as search_columns
from minqing.services.projection.views.issues.fold import (
    IssueView,
    Recorded,
    Version,
    fold_versions,
    step,
    stored,
    until,
)
from minqing.services.projection.views.issues.queries import recorded
from minqing.services.projection.views.issues.tables import (
    DERIVED,
    FIELDS,
    issue_events,
    issue_versions,
    issues,
)
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

_UPSERT = insert_sql(issues, "issue_id", update=True)
# The same for a matter whose text did not change: its search columns stay as they are (the
# values given are never used: the matter's row exists).
_UPSERT_KEEP_SEARCH = insert_sql(issues, "issue_id", update=True, keep=DERIVED)
_COLUMNS = column_names(issues, "issue_id")
_VERSION_COLUMNS = [*FIELDS, "valid_to"]
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
_SELECT_MANY = select_sql(issues, FIELDS, "issue_id = any($1::text[])")


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
    return (*(getattr(view, name) for name in FIELDS), valid_to)


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
