"""Projection's rules: fold a matter's events, in stream order, into what supervisors see.

Pure. Event types this code does not know are kept in the history by the store and leave
the view as it is, so new producers never break the projection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from functools import singledispatch
from typing import Any

from minqing.shared.contract.envelope import NewerVersion, UnreadableEvent, read
from minqing.shared.contract.events import (
    Event,
    IssueAssigned,
    IssueDeadlineRecomputed,
    IssueDuplicateReported,
    IssueEscalated,
    IssueLookbackDueRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueOverdue,
    IssueReported,
    IssueResolved,
    IssueRevisitRecorded,
    IssueStatus,
)


@dataclass(frozen=True)
class Recorded:
    """One event as the projection stored it, at (epoch, position) in the stream."""

    position: int
    type: str
    dataversion: int
    time: datetime
    data: dict[str, Any]
    epoch: int = 1
    event_id: str = ""

    @property
    def at(self) -> tuple[int, int]:
        return (self.epoch, self.position)


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
    reporter_phone_masked: str | None = None
    external_ref: str | None = None
    split_from: str | None = None
    scale: str | None = None
    duplicate_count: int = 0
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    unit: str | None = None
    responsible_person_id: str | None = None
    responsible_person_name: str | None = None
    deadline: date | None = None
    deadline_calendar: str | None = None
    deadline_provisional: bool = False
    deadline_note: str | None = None
    assignment_no: int = 0
    lookback_due: date | None = None
    lookback_due_provisional: bool = False
    escalation_level: int = 0
    escalated_to: str | None = None
    reported_at: datetime | None = None
    assigned_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    last_event_at: datetime | None = None
    last_epoch: int = 0
    last_position: int = 0
    event_count: int = 0

    @property
    def at(self) -> tuple[int, int]:
        """Where in the stream the last applied event sits: (epoch, position)."""
        return (self.last_epoch, self.last_position)


_NAMES = frozenset(f.name for f in fields(IssueView))


def with_changes(view: IssueView, **changes: Any) -> IssueView:
    """``dataclasses.replace`` for the view, without re-running ``__init__`` over its 38
    fields (which a frozen dataclass does one ``object.__setattr__`` at a time: under
    py-spy a tenth of the projection's time)."""
    unknown = changes.keys() - _NAMES
    if unknown:
        raise TypeError(f"IssueView has no field(s) {sorted(unknown)}")
    new = object.__new__(IssueView)
    new.__dict__.update(view.__dict__, **changes)
    return new


def stored(values: Mapping[str, Any]) -> IssueView:
    """The view from a stored row (a mapping with every field, and maybe more), built
    like ``with_changes`` builds one."""
    new = object.__new__(IssueView)
    new.__dict__.update({name: values[name] for name in _NAMES})
    return new


def fold(issue_id: str, events: Iterable[Recorded]) -> IssueView:
    """The view after all of a matter's events, applied in stream order."""
    return fold_versions(issue_id, events)[0]


Version = tuple[IssueView, datetime]
"""A state the matter was in, and when it stopped being so: in force from its
``last_event_at`` until (not including) that time."""


def fold_versions(issue_id: str, events: Iterable[Recorded]) -> tuple[IssueView, list[Version]]:
    """The view after all of a matter's events, and every earlier state it passed through
    (once it was in the list), for answers "as of" a past time."""
    view = IssueView(issue_id=issue_id)
    versions: list[Version] = []
    for record in sorted(events, key=lambda r: r.at):
        previous, view = view, evolve(view, record)
        if previous.status is not None:  # it was in the list until now
            versions.append((previous, until(view)))
    return view, versions


def until(view: IssueView) -> datetime:
    """When the state before ``view`` ended: the time ``view`` began."""
    assert view.last_event_at is not None, "a stepped view has a time"
    return view.last_event_at


def evolve(view: IssueView, record: Recorded) -> IssueView:
    """The view after the next recorded event of its matter (in stream order)."""
    return step(view, typed(record), record)


def step(view: IssueView, event: Event | None, record: Recorded) -> IssueView:
    """Apply the next event (in stream order) and note where it sits. The view's time never
    goes back (a producer's clock may lag another's), so a matter's states follow each other
    in time without overlapping. ``event`` is ``record``'s, read once by the caller."""
    moment = record.time
    if view.last_event_at is not None and view.last_event_at > moment:
        moment = view.last_event_at
    return with_changes(
        apply(view, event, record.time),
        last_event_at=moment,
        last_epoch=record.epoch,
        last_position=record.position,
        event_count=view.event_count + 1,
    )


def typed(record: Recorded) -> Event | None:
    """The known event in a record, read tolerantly; ``None`` if it cannot be read."""
    try:
        return read(record.type, record.dataversion, record.data)
    except (UnreadableEvent, NewerVersion):
        return None


def apply(view: IssueView, event: Event | None, at: datetime) -> IssueView:
    """One step of the fold: what ``event``, recorded ``at``, changes in the view."""
    return _apply(event, view, at)


@singledispatch
def _apply(event: Event | None, view: IssueView, at: datetime) -> IssueView:
    return view  # an event the list does not show, or one this code cannot read


@_apply.register(IssueReported)
def _reported(event: IssueReported, view: IssueView, at: datetime) -> IssueView:
    # the report's fields the list shows (a field added to the event later is not one yet)
    shown = {name: value for name, value in event.model_dump().items() if name in _NAMES}
    return with_changes(view, status=view.status or "reported", reported_at=at, **shown)


@_apply.register(IssueDuplicateReported)
def _duplicate(event: IssueDuplicateReported, view: IssueView, at: datetime) -> IssueView:
    return with_changes(view, duplicate_count=view.duplicate_count + 1)


@_apply.register(IssueAssigned)
def _assigned(event: IssueAssigned, view: IssueView, at: datetime) -> IssueView:
    return with_changes(
        view,
        status="assigned",
        unit=event.unit,
        responsible_person_id=event.responsible_person_id,
        responsible_person_name=event.responsible_person_name,
        deadline=event.deadline,
        deadline_calendar=event.calendar,
        deadline_provisional=event.deadline_provisional,
        deadline_note=event.deadline_note,
        assignment_no=event.assignment_no,
        assigned_at=at,
        category=view.category or event.category,
        village=view.village or event.village,
        lookback_due=None,
        lookback_due_provisional=False,
        escalation_level=0,
        escalated_to=None,
        resolved_at=None,
    )


@_apply.register(IssueOverdue)
def _overdue(event: IssueOverdue, view: IssueView, at: datetime) -> IssueView:
    if event.milestone is not None:
        return view  # a step of the plan, not the matter itself, is late
    return with_changes(view, escalation_level=0, escalated_to=None)


@_apply.register(IssueEscalated)
def _escalated(event: IssueEscalated, view: IssueView, at: datetime) -> IssueView:
    if event.milestone is not None:
        return view  # a step of the plan, not the matter itself, is late
    return with_changes(view, escalation_level=event.level, escalated_to=event.to_person_name)


@_apply.register(IssueDeadlineRecomputed)
def _deadline_recomputed(
    event: IssueDeadlineRecomputed, view: IssueView, at: datetime
) -> IssueView:
    return with_changes(
        view,
        deadline=event.deadline,
        deadline_calendar=event.calendar,
        deadline_provisional=event.provisional,
        deadline_note=event.note,
    )


@_apply.register(IssueResolved)
def _resolved(event: IssueResolved, view: IssueView, at: datetime) -> IssueView:
    return with_changes(
        view,
        status="resolved",
        resolved_at=at,
        lookback_due=event.lookback_due,
        lookback_due_provisional=event.lookback_due_provisional,
    )


@_apply.register(IssueLookbackDueRecomputed)
def _lookback_due_recomputed(
    event: IssueLookbackDueRecomputed, view: IssueView, at: datetime
) -> IssueView:
    return with_changes(
        view, lookback_due=event.lookback_due, lookback_due_provisional=event.provisional
    )


@_apply.register(IssueLookbackPassed)
def _lookback_passed(event: IssueLookbackPassed, view: IssueView, at: datetime) -> IssueView:
    return with_changes(view, status="closed", closed_at=at)


@_apply.register(IssueLookbackFailed)
@_apply.register(IssueRevisitRecorded)
def _visited(
    event: IssueLookbackFailed | IssueRevisitRecorded, view: IssueView, at: datetime
) -> IssueView:
    # One rule: a failed look-back, or a failed re-visit of a closed matter, reopens it
    # (a passed re-visit, or a failed one from before re-visits reopened, leaves it).
    if isinstance(event, IssueRevisitRecorded) and not event.reopens:
        return view
    return with_changes(view, status="reopened", closed_at=None)


def is_overdue(view: IssueView, today: date) -> bool:
    """Assigned or reopened past its deadline without being resolved."""
    return (
        view.status in ("assigned", "reopened")
        and view.deadline is not None
        and today > view.deadline
    )
