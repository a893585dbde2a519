"""Projection's rules: fold a matter's events, in stream order, into what supervisors see.

Pure. Event types this code does not know are kept in the history by the store and leave
the view as it is, so new producers never break the projection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from shared.envelope import event_class
from shared.events import (
    Event,
    IssueAssigned,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueReported,
    IssueResolved,
    IssueStatus,
)


@dataclass(frozen=True)
class Recorded:
    """One event as the projection stored it."""

    position: int
    type: str
    dataversion: int
    time: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class IssueView:
    issue_id: str
    status: IssueStatus | None = None
    title: str | None = None
    description: str | None = None
    category: str | None = None
    village: str | None = None
    source: str | None = None
    reporter_ref: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    unit: str | None = None
    responsible_person_id: str | None = None
    responsible_person_name: str | None = None
    deadline: date | None = None
    assignment_no: int = 0
    lookback_due: date | None = None
    reported_at: datetime | None = None
    assigned_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    last_event_at: datetime | None = None
    last_position: int = 0
    event_count: int = 0


def fold(issue_id: str, events: Iterable[Recorded]) -> IssueView:
    """The view after all of a matter's events, applied in stream order."""
    view = IssueView(issue_id=issue_id)
    for record in sorted(events, key=lambda r: r.position):
        view = replace(
            apply(view, typed(record), record.time),
            last_event_at=record.time,
            last_position=record.position,
            event_count=view.event_count + 1,
        )
    return view


def typed(record: Recorded) -> Event | None:
    """The known event in a record; ``None`` for unknown types, versions or bad data."""
    cls = event_class(record.type)
    if cls is None or record.dataversion != cls.VERSION:
        return None
    try:
        return cls.model_validate(record.data)
    except ValidationError:
        return None


def apply(view: IssueView, event: Event | None, at: datetime) -> IssueView:
    """One step of the fold."""
    if isinstance(event, IssueReported):
        return replace(view, status=view.status or "reported", reported_at=at, **event.model_dump())
    if isinstance(event, IssueAssigned):
        return replace(
            view,
            status="assigned",
            unit=event.unit,
            responsible_person_id=event.responsible_person_id,
            responsible_person_name=event.responsible_person_name,
            deadline=event.deadline,
            assignment_no=event.assignment_no,
            assigned_at=at,
            category=view.category or event.category,
            village=view.village or event.village,
            lookback_due=None,
            resolved_at=None,
        )
    if isinstance(event, IssueResolved):
        return replace(view, status="resolved", resolved_at=at, lookback_due=event.lookback_due)
    if isinstance(event, IssueLookbackPassed):
        return replace(view, status="closed", closed_at=at)
    if isinstance(event, IssueLookbackFailed):
        return replace(view, status="reopened")
    return view


def is_overdue(view: IssueView, today: date) -> bool:
    """Assigned or reopened past its deadline without being resolved."""
    return (
        view.status in ("assigned", "reopened")
        and view.deadline is not None
        and today > view.deadline
    )
