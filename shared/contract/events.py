"""The event contract, version 1: one frozen class per fact, carried as CloudEvents ``data``.

The issue id is the CloudEvent ``subject``; who did it is the ``actor`` attribute. Each
class names its ``type`` (without the ``minqing.`` prefix), its ``dataversion`` and the
service that emits it; declaring it registers it (``EVENT_CLASSES``, in the order of this
file), so adding an event type is adding a class here, not an entry in a list elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

# The services that emit events (projection only reads them).
Emitter = Literal["intake", "assignment", "followup"]

_REGISTERED: dict[str, type[Event]] = {}


class Event(BaseModel):
    """Base of every event's data: flat, primitives only, frozen, no unknown fields.

    A subclass that sets ``TYPE`` is an event type of the contract: it must name the
    service that emits it (``EMITTED_BY``) and is registered when it is declared. A
    subclass without ``TYPE`` only shares fields (``LookbackRecorded``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    EMITTED_BY: ClassVar[Emitter]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "TYPE" not in cls.__dict__:
            return
        if getattr(cls, "EMITTED_BY", None) is None:
            raise TypeError(f"{cls.__name__} ({cls.TYPE}) does not say which service emits it")
        if cls.TYPE in _REGISTERED:
            raise TypeError(f"{cls.__name__}: {cls.TYPE} is {_REGISTERED[cls.TYPE].__name__}")
        _REGISTERED[cls.TYPE] = cls


FundingSource = Literal["project_funds", "self_raised", "social_donations"]
FundingStatus = Literal["applied", "approved", "received", "spent"]

# Photos a step names, at most this many: intake's photo store keeps the bytes (private);
# an event names each by id and SHA-256, so the audit trail's hash covers what was seen.
MAX_PHOTOS = 10


class PhotoRef(BaseModel):
    """A photo in intake's store: its id and the SHA-256 of its bytes (hex)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    photo_id: str
    sha256: str


def _photos() -> Any:
    """The ``photos`` field of a step that may name photos (absent on events from before)."""
    return Field(default=(), max_length=MAX_PHOTOS)


class IssueReported(Event):
    """A matter was accepted onto the list.

    The reporter appears only as ``reporter_ref`` and a masked phone (``138****5678``);
    the name and phone stay in intake. ``external_ref`` is the sending system's own ticket
    id; ``split_from`` names the matter this report was wrongly merged into, if it was.
    """

    TYPE: ClassVar[str] = "issue.reported"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    title: str
    description: str
    category: str
    village: str
    source: str
    reporter_ref: str | None = None
    reporter_phone_masked: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    external_ref: str | None = None
    split_from: str | None = None
    # small (solved on the spot) or major (needs a project); absent: the category's default
    scale: Literal["small", "major"] | None = None
    # The staff member who recorded it, as the actor (the envelope's: the authenticated
    # principal, or the department system that sent it) named them.
    on_behalf_of: str | None = None
    photos: tuple[PhotoRef, ...] = _photos()  # taken on the spot (intake's photo store)


class IssueDuplicateReported(Event):
    """Another report of a matter already on the list (same village and category, close
    text): its reporter is added to the matter instead of opening a second one."""

    TYPE: ClassVar[str] = "issue.duplicate_reported"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    report_id: str
    source: str
    title: str
    description: str
    similarity: float = Field(ge=0, le=100)
    reporter_ref: str | None = None
    reporter_phone_masked: str | None = None
    external_ref: str | None = None
    # The staff member who recorded it, as the actor (the envelope's: the authenticated
    # principal, or the department system that sent it) named them.
    on_behalf_of: str | None = None
    photos: tuple[PhotoRef, ...] = _photos()  # taken on the spot (intake's photo store)


class IssueDuplicateSplit(Event):
    """A supervisor undid a wrong duplicate match: the report became a matter of its own
    (``new_issue_id``, whose ``issue.reported`` names this matter in ``split_from``)."""

    TYPE: ClassVar[str] = "issue.duplicate_split"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    report_id: str
    new_issue_id: str
    reason: str
    # The staff member who recorded it, as the actor (the envelope's: the authenticated
    # principal, or the department system that sent it) named them.
    on_behalf_of: str | None = None


class IssueAssigned(Event):
    """A matter was routed to a unit and a responsible person, with a deadline.

    Version 2 adds ``calendar``: which working-day calendar produced the deadline. A
    deadline that counted days no calendar source knows yet is ``deadline_provisional``,
    with the reason in ``deadline_note``; it is recomputed later
    (``issue.deadline_recomputed``).
    """

    TYPE: ClassVar[str] = "issue.assigned"
    EMITTED_BY: ClassVar[Emitter] = "assignment"
    VERSION: ClassVar[int] = 2

    unit: str
    responsible_person_id: str
    responsible_person_name: str
    deadline: date
    working_days: int = Field(ge=0)
    assignment_no: int = Field(ge=1)
    reason: str
    category: str
    village: str
    calendar: str
    deadline_provisional: bool = False
    deadline_note: str | None = None
    # A major affair's staged plan: the template (plans.toml) its milestones come from.
    plan_template: str | None = None
    # Which routing rule (routing.toml) decided, and why in words; "manual" for a
    # supervisor's re-assignment. Absent on events from before routing rules.
    rule_id: str | None = None
    rule_explanation: str | None = None
    scale: str | None = None  # the scale the matter was routed as
    # The registry unit whose responsible person this is (absent: a person named by a rule
    # or a supervisor); a new responsible person there takes the matter over.
    responsible_unit: str | None = None
    # The local day the deadline was counted from, and the channel the matter came in by:
    # what later counts and routes of this assignment start from. Absent on events from before.
    counted_from: date | None = None
    source: str | None = None


class IssueDeadlineRecomputed(Event):
    """A provisional deadline was counted again once the calendar learned its days."""

    TYPE: ClassVar[str] = "issue.deadline_recomputed"
    EMITTED_BY: ClassVar[Emitter] = "assignment"

    previous_deadline: date
    deadline: date
    calendar: str
    provisional: bool
    note: str | None = None
    assignment_no: int = Field(ge=1)


class IssueResolved(Event):
    """The assigned unit reported the matter solved (cancellation, 销号)."""

    TYPE: ClassVar[str] = "issue.resolved"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    unit: str
    summary: str
    resolved_by: str
    assignment_no: int = Field(ge=1)
    lookback_due: date
    resolved_on: date | None = None  # the local day; absent on events from before
    calendar: str | None = None  # absent on events from before calendars were named
    lookback_due_provisional: bool = False
    lookback_due_note: str | None = None
    # Additive: what backs the resolution, and who is to look back (lookback.toml).
    evidence: tuple[str, ...] = ()
    cost: Decimal | None = Field(default=None, ge=0, decimal_places=2)
    funding_source: FundingSource | None = None
    lookback_unit: str | None = None
    # resolved_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None
    photos: tuple[PhotoRef, ...] = _photos()  # taken on the spot (intake's photo store)


class IssueLookbackDueRecomputed(Event):
    """A provisional look-back due date was counted again once the calendar learned its
    days."""

    TYPE: ClassVar[str] = "issue.lookback_due_recomputed"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    previous_lookback_due: date
    lookback_due: date
    calendar: str
    provisional: bool
    note: str | None = None
    assignment_no: int = Field(ge=1)


OverdueKind = Literal["resolution", "lookback", "milestone"]
EscalationKind = Literal["resolution", "lookback", "milestone", "lookback_failed"]


class IssueOverdue(Event):
    """A matter was not resolved by its deadline (``resolution``), its look-back was not
    done within its window (``lookback``), or a milestone of its plan was not done by its
    due date (``milestone``, numbered from 1)."""

    TYPE: ClassVar[str] = "issue.overdue"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    kind: OverdueKind
    due: date
    assignment_no: int = Field(ge=1)
    unit: str | None = None
    milestone: int | None = Field(default=None, ge=1)


class IssueEscalated(Event):
    """One step up the escalation ladder of an overdue matter."""

    TYPE: ClassVar[str] = "issue.escalated"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    kind: EscalationKind
    level: int = Field(ge=1)
    to_role: str
    to_person_id: str
    to_person_name: str
    due: date
    assignment_no: int = Field(ge=1)
    reason: str
    milestone: int | None = Field(default=None, ge=1)


class LookbackRecorded(Event):
    """Fields shared by both outcomes of a look-back visit."""

    visitor: str
    notes: str
    assignment_no: int = Field(ge=1)
    lookback_due: date
    within_window: bool
    # visitor: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None
    photos: tuple[PhotoRef, ...] = _photos()  # taken on the spot (intake's photo store)


class IssueLookbackPassed(LookbackRecorded):
    """The look-back visit confirmed the fix: the loop is closed."""

    TYPE: ClassVar[str] = "issue.lookback_passed"
    EMITTED_BY: ClassVar[Emitter] = "followup"


class IssueLookbackFailed(LookbackRecorded):
    """The look-back visit found the matter not fixed: it is reopened. ``failures`` counts
    this matter's failed look-backs, this one included (absent on events from before)."""

    TYPE: ClassVar[str] = "issue.lookback_failed"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    failures: int = Field(default=1, ge=1)


class IssueRevisitRecorded(Event):
    """Line staff went back to a closed matter whose reporter was dissatisfied
    (``issue.revisit_flagged``): the fix held (``passed``, the matter stays closed) or not
    (``failed``, the notes say what is wrong). A failed re-visit reopens the matter as a
    failed look-back does: it goes back to its unit with a new deadline, and ``failures``
    counts this matter's failed look-backs and re-visits, this one included (the second
    goes to the leader in charge). ``failures`` is absent on a passed re-visit, and on
    failed ones recorded before re-visits reopened matters: those left the matter closed
    (``reopens`` is false), for a supervisor to re-assign by hand."""

    TYPE: ClassVar[str] = "issue.revisit_recorded"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    outcome: Literal["passed", "failed"]
    visitor: str
    notes: str
    reason: str  # why the re-visit was asked for (the score and the reporter's words)
    due: date
    within_window: bool
    assignment_no: int = Field(ge=1)
    # visitor: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None
    photos: tuple[PhotoRef, ...] = _photos()  # taken on the spot (intake's photo store)
    failures: int | None = Field(default=None, ge=1)  # additive: set when it reopens

    @property
    def reopens(self) -> bool:
        """Whether this re-visit reopened the matter (a failed one, recorded since)."""
        return self.outcome == "failed" and self.failures is not None


class IssueSupervisorInvited(Event):
    """A resident was invited to supervise a matter (a project improving production or
    living facilities). The name and phone stay in intake: ``supervisor_ref`` and a masked
    phone travel."""

    TYPE: ClassVar[str] = "issue.supervisor_invited"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    supervisor_ref: str
    supervisor_phone_masked: str | None = None
    invited_by: str
    # invited_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


class IssueSupervisionRecorded(Event):
    """A resident supervisor checked a matter's work (``check``) or signed it off
    (``sign_off``), satisfied or not, with notes."""

    TYPE: ClassVar[str] = "issue.supervision_recorded"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    supervisor_ref: str
    kind: Literal["check", "sign_off"]
    satisfied: bool
    notes: str


class IssueReporterReplied(Event):
    """A reporter was answered (``stage``: the matter was resolved, or closed) through the
    notifier named in ``channel``; ``reply_id`` is the reply's key at the receiver."""

    TYPE: ClassVar[str] = "issue.reporter_replied"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    reply_id: str
    reporter_ref: str
    stage: Literal["resolved", "closed"]
    channel: str
    attempts: int = Field(ge=1)
    feedback_link: bool


class IssueFeedbackRecorded(Event):
    """A reporter rated how a matter was handled (1-5), answering one reply."""

    TYPE: ClassVar[str] = "issue.feedback_recorded"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    reply_id: str
    reporter_ref: str
    stage: Literal["resolved", "closed"]
    score: int = Field(ge=1, le=5)
    comment: str


class IssueRevisitFlagged(Event):
    """A reporter was dissatisfied (score 2 or less): the matter is flagged for a re-visit."""

    TYPE: ClassVar[str] = "issue.revisit_flagged"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    reply_id: str
    reporter_ref: str
    score: int = Field(ge=1, le=5)
    reason: str


class IssueContactRevealed(Event):
    """Someone read the full name and phone of a matter's reporters (``reporter_refs``),
    for ``reason``; the actor is who read them. The name and phone themselves never
    travel: the event records that they were seen, not what they are."""

    TYPE: ClassVar[str] = "issue.contact_revealed"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    reporter_refs: tuple[str, ...]
    reason: str


class IssueReporterErased(Event):
    """A reporter's name and phone were erased from intake (``reporter_ref`` stays, masked
    as it always was); recorded on each matter the reporter reported. Replies not yet sent
    to that reporter are dropped."""

    TYPE: ClassVar[str] = "issue.reporter_erased"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    reporter_ref: str
    reason: str


class IssueSupervisorErased(Event):
    """An invited resident supervisor's name and phone were erased from intake
    (``supervisor_ref`` and the masked phone stay, as they always travelled); recorded on
    the matter they were invited to supervise."""

    TYPE: ClassVar[str] = "issue.supervisor_erased"
    EMITTED_BY: ClassVar[Emitter] = "intake"

    supervisor_ref: str
    reason: str


MilestoneResponsible = Literal["unit", "village_secretary", "person"]


class PlannedMilestone(BaseModel):
    """One stage of a major affair's plan, numbered from 1 in plan order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=1)
    title: str
    due: date
    working_days: int = Field(ge=0)
    responsible: MilestoneResponsible
    responsible_id: str
    responsible_name: str
    provisional: bool = False
    note: str | None = None


class IssuePlanSet(Event):
    """A major affair got its staged plan (from a template in plans.toml, or set by a
    supervisor), replacing any plan before; due dates are counted in working days from
    ``counted_from`` on ``calendar``."""

    TYPE: ClassVar[str] = "issue.plan_set"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    plan_template: str | None
    milestones: tuple[PlannedMilestone, ...] = Field(min_length=1)
    counted_from: date
    calendar: str
    set_by: str
    assignment_no: int = Field(ge=1)
    # Set when the plan's last step is due after the matter's deadline: why the deadline is
    # to follow the plan (assignment extends it to that step's date). Absent: it ends by it.
    extend_deadline_reason: str | None = None
    # set_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


class IssueProgressReported(Event):
    """Progress on one milestone of the plan: a note, and whether the milestone is done."""

    TYPE: ClassVar[str] = "issue.progress_reported"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    milestone: int = Field(ge=1)
    title: str
    note: str
    done: bool
    reported_by: str
    assignment_no: int = Field(ge=1)
    # reported_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


class IssueFundingRecorded(Event):
    """Money for a matter, in yuan: a new entry, or a new status of an entry recorded
    before (same ``funding_id``)."""

    TYPE: ClassVar[str] = "issue.funding_recorded"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    funding_id: str
    amount: Decimal = Field(gt=0, decimal_places=2)
    source: FundingSource
    status: FundingStatus
    note: str = ""
    recorded_by: str
    # recorded_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


class IssueMilestoneDueRecomputed(Event):
    """A provisional milestone due date was counted again once the calendar learned its
    days."""

    TYPE: ClassVar[str] = "issue.milestone_due_recomputed"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    milestone: int = Field(ge=1)
    previous_due: date
    due: date
    calendar: str
    provisional: bool
    note: str | None = None
    assignment_no: int = Field(ge=1)


class IssueSentBack(Event):
    """The assigned unit sent the matter back as wrongly given to it, with the reason. Until
    the town office re-routes it (a new ``issue.assigned``), the unit stays responsible: its
    assignment and deadline stand (first-receiver responsibility)."""

    TYPE: ClassVar[str] = "issue.sent_back"
    EMITTED_BY: ClassVar[Emitter] = "assignment"

    unit: str
    reason: str
    sent_back_by: str
    assignment_no: int = Field(ge=1)
    deadline: date  # the deadline that still stands
    # sent_back_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


class IssueAccepted(Event):
    """The assigned unit accepted the matter (签收): it has seen it and takes it on. Once per
    assignment; a re-assignment is accepted again by its new unit."""

    TYPE: ClassVar[str] = "issue.accepted"
    EMITTED_BY: ClassVar[Emitter] = "assignment"

    unit: str
    accepted_by: str
    assignment_no: int = Field(ge=1)
    # accepted_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


class IssueDeadlineExtended(Event):
    """A supervisor extended the current assignment's deadline, with the reason."""

    TYPE: ClassVar[str] = "issue.deadline_extended"
    EMITTED_BY: ClassVar[Emitter] = "assignment"

    previous_deadline: date
    deadline: date
    extra_working_days: int = Field(ge=1)
    calendar: str
    provisional: bool = False
    note: str | None = None
    reason: str
    extended_by: str
    assignment_no: int = Field(ge=1)
    # extended_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


class IssueResponsibleChanged(Event):
    """The person answering for an open matter changed because its unit's responsible
    person changed in the registry (``unit.responsible_changed``)."""

    TYPE: ClassVar[str] = "issue.responsible_changed"
    EMITTED_BY: ClassVar[Emitter] = "assignment"

    unit: str
    previous_person_id: str
    previous_person_name: str
    person_id: str
    person_name: str
    assignment_no: int = Field(ge=1)
    reason: str


class UnitResponsibleChanged(Event):
    """The registry of units: a unit's responsible person (for a village's party branch, its
    secretary) is now this person instead of the previous one, from the reference files at
    start-up or by hand. Its subject is the unit code, not an issue id. (A unit enters the
    registry from the reference files without an event.)"""

    TYPE: ClassVar[str] = "unit.responsible_changed"
    EMITTED_BY: ClassVar[Emitter] = "assignment"

    unit: str
    unit_name: str
    previous_person_id: str
    previous_person_name: str
    person_id: str
    person_name: str
    contact: str
    reason: str
    changed_by: str
    # changed_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


class LineStaffChanged(Event):
    """The registry of line staff, who look back at other units' work: a person became
    line staff of a unit (``added``), moved to another unit or other villages
    (``changed``), or is line staff no more (``removed``), from the reference files or by
    hand. ``villages`` empty: every village. Its subject is the person's principal id
    (``person:zhou.min``), not an issue id. (A person enters the registry from the
    reference files at the first start without an event.)"""

    TYPE: ClassVar[str] = "linestaff.changed"
    EMITTED_BY: ClassVar[Emitter] = "followup"

    change: Literal["added", "changed", "removed"]
    person_id: str
    person_name: str
    unit: str
    unit_name: str
    villages: tuple[str, ...] = ()
    previous_unit: str | None = None
    previous_villages: tuple[str, ...] = ()
    reason: str
    changed_by: str
    # changed_by: the authenticated principal who did it (the envelope's actor); on_behalf_of:
    # the person on the ground they name, if another (recorded beside, never instead).
    on_behalf_of: str | None = None


# Every event type of the contract, in the order declared above (the AsyncAPI document's).
EVENT_CLASSES: tuple[type[Event], ...] = tuple(_REGISTERED.values())
EVENTS_BY_TYPE: dict[str, type[Event]] = dict(_REGISTERED)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _assigned_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 deadlines were all counted Monday to Friday."""
    return {**data, "calendar": "weekdays"}


# (type, version) -> the function that turns that version's data into the next version's.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    (IssueAssigned.TYPE, 1): _assigned_v1_to_v2,
}

IssueStatus = Literal["reported", "assigned", "resolved", "closed", "reopened"]
ISSUE_STATUSES: tuple[IssueStatus, ...] = ("reported", "assigned", "resolved", "closed", "reopened")
