"""Projection: a matter's events, folded in stream order, into what supervisors see."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from minqing.services.projection.views.issues.fold import (
    IssueView,
    Recorded,
    apply,
    evolve,
    fold,
    fold_versions,
    is_overdue,
)
from minqing.shared.contract.events import (
    Event,
    IssueAssigned,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueReported,
    IssueResolved,
    IssueRevisitRecorded,
    IssueStatus,
)

MORNING = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
DEADLINE = date(2026, 12, 4)
LOOKBACK_DUE = date(2026, 12, 15)


def at(hours: int) -> datetime:
    return MORNING + timedelta(hours=hours)


def recorded(position: int, event: Event, time: datetime | None = None) -> Recorded:
    return Recorded(
        position=position,
        type=f"minqing.{event.TYPE}",
        dataversion=event.VERSION,
        time=time or at(position),
        data=event.model_dump(mode="json"),
    )


def unknown(position: int, data: dict[str, Any] | None = None, **fields: Any) -> Recorded:
    values: dict[str, Any] = {
        "position": position,
        "type": "minqing.issue.teleported",
        "dataversion": 1,
        "time": at(position),
        "data": data if data is not None else {"level": "town"},
    }
    values.update(fields)
    return Recorded(**values)


def report() -> IssueReported:
    return IssueReported(
        title="Street lights out on Shiguan Road",
        description="Six lamps dark for a week",
        category="street_lights",
        village="shihu",
        source="hotline_12345",
        reporter_ref="ref-1",
        address="Shiguan Road",
        lat=33.51,
        lon=119.21,
    )


def assignment(assignment_no: int = 1, deadline: date = DEADLINE) -> IssueAssigned:
    return IssueAssigned(
        unit="town_construction",
        responsible_person_id="shihu-secretary",
        responsible_person_name="Chen Lixin",
        deadline=deadline,
        working_days=5,
        assignment_no=assignment_no,
        reason="routed on report",
        category="street_lights",
        village="shihu",
        calendar="weekdays",
    )


def resolution(assignment_no: int = 1) -> IssueResolved:
    return IssueResolved(
        unit="town_construction",
        summary="Replaced six lamps",
        resolved_by="wu",
        assignment_no=assignment_no,
        lookback_due=LOOKBACK_DUE,
    )


def lookback(cls: type[IssueLookbackPassed | IssueLookbackFailed], assignment_no: int = 1) -> Event:
    return cls(
        visitor="grid-worker-7",
        notes="checked at night",
        assignment_no=assignment_no,
        lookback_due=LOOKBACK_DUE,
        within_window=True,
    )


def history() -> list[Recorded]:
    """Reported, assigned, resolved: positions 1 to 3."""
    return [recorded(1, report()), recorded(2, assignment()), recorded(3, resolution())]


def test_a_matter_without_events_has_no_status() -> None:
    assert fold("issue-1", []) == IssueView(issue_id="issue-1")


def test_the_list_is_the_view_evolved_by_each_recorded_event_in_turn() -> None:
    view = IssueView(issue_id="issue-1")
    for record in [*history(), unknown(4)]:
        view = evolve(view, record)

    assert view == fold("issue-1", [*history(), unknown(4)])
    assert (view.status, view.event_count) == ("resolved", 4)


def test_a_report_shows_what_was_reported_and_where() -> None:
    view = fold("issue-1", [recorded(1, report())])

    assert view.status == "reported"
    assert view.title == "Street lights out on Shiguan Road"
    assert view.category == "street_lights"
    assert view.village == "shihu"
    assert view.source == "hotline_12345"
    assert view.reporter_ref == "ref-1"
    assert (view.address, view.lat, view.lon) == ("Shiguan Road", 33.51, 119.21)
    assert view.reported_at == at(1)


class ReportedLater(IssueReported):
    """A report as a later producer sends it: with a field the list does not show."""

    named_by: str | None = None


def test_a_report_field_the_list_does_not_show_is_left_out() -> None:
    event = ReportedLater(**report().model_dump(), named_by="desk clerk Wang")

    view = apply(IssueView("issue-1"), event, at(1))

    assert (view.status, view.title, view.village) == ("reported", report().title, "shihu")


def test_an_assignment_shows_the_unit_the_responsible_person_and_the_deadline() -> None:
    view = fold("issue-1", history()[:2])

    assert view.status == "assigned"
    assert view.unit == "town_construction"
    assert view.responsible_person_id == "shihu-secretary"
    assert view.responsible_person_name == "Chen Lixin"
    assert view.deadline == DEADLINE
    assert view.assignment_no == 1
    assert view.assigned_at == at(2)


def test_a_resolution_shows_when_the_look_back_is_due() -> None:
    view = fold("issue-1", history())

    assert view.status == "resolved"
    assert view.lookback_due == LOOKBACK_DUE
    assert view.resolved_at == at(3)


def test_a_passed_look_back_closes_the_matter() -> None:
    view = fold("issue-1", [*history(), recorded(4, lookback(IssueLookbackPassed))])

    assert view.status == "closed"
    assert view.closed_at == at(4)


def test_events_are_folded_in_stream_order_whatever_order_they_arrive_in() -> None:
    in_order = fold("issue-1", history())

    shuffled = fold("issue-1", [history()[2], history()[0], history()[1]])

    assert shuffled == in_order
    assert shuffled.status == "resolved"
    assert shuffled.last_position == 3
    assert shuffled.last_event_at == at(3)


def test_a_failed_look_back_reopens_the_matter_and_the_next_assignment_is_number_two() -> None:
    reopened = [*history(), recorded(4, lookback(IssueLookbackFailed))]
    assert fold("issue-1", reopened).status == "reopened"

    view = fold("issue-1", [*reopened, recorded(5, assignment(2, date(2026, 12, 21)))])

    assert view.status == "assigned"
    assert view.assignment_no == 2
    assert view.deadline == date(2026, 12, 21)
    assert view.assigned_at == at(5)
    assert view.lookback_due is None
    assert view.resolved_at is None
    assert view.reported_at == at(1)
    assert view.event_count == 5


def revisit(outcome: str, failures: int | None) -> IssueRevisitRecorded:
    return IssueRevisitRecorded(
        outcome=outcome,  # type: ignore[arg-type]
        visitor="grid-worker-7",
        notes="two lamps dark again",
        reason="score 1: still dark",
        due=date(2026, 12, 22),
        within_window=True,
        assignment_no=1,
        failures=failures,
    )


def test_a_failed_revisit_of_a_closed_matter_reopens_it_as_a_failed_look_back_does() -> None:
    closed = [*history(), recorded(4, lookback(IssueLookbackPassed))]
    assert fold("issue-1", closed).closed_at == at(4)

    view = fold("issue-1", [*closed, recorded(5, revisit("failed", 1))])
    assert (view.status, view.closed_at) == ("reopened", None)

    again = fold(
        "issue-1", [*closed, recorded(5, revisit("failed", 1)), recorded(6, assignment(2))]
    )
    assert (again.status, again.assignment_no, again.deadline) == ("assigned", 2, DEADLINE)
    assert again.lookback_due is None and again.resolved_at is None


def test_a_passed_revisit_or_a_failed_one_from_before_reopening_leaves_it_closed() -> None:
    closed = [*history(), recorded(4, lookback(IssueLookbackPassed))]
    for visit in (revisit("passed", None), revisit("failed", None)):
        view = fold("issue-1", [*closed, recorded(5, visit)])
        assert (view.status, view.closed_at) == ("closed", at(4))


def test_an_unknown_event_type_is_counted_but_does_not_change_the_status() -> None:
    view = fold("issue-1", [*history()[:2], unknown(3)])

    assert view.status == "assigned"
    assert view.event_count == 3
    assert view.last_position == 3
    assert view.last_event_at == at(3)


@pytest.mark.parametrize(
    "unreadable",
    [
        unknown(3, type="minqing.issue.resolved", dataversion=2),
        unknown(3, type="minqing.issue.resolved", data={"summary": "only a summary"}),
    ],
    ids=["newer version", "bad data"],
)
def test_an_event_this_code_cannot_read_is_counted_but_changes_nothing_else(
    unreadable: Recorded,
) -> None:
    before = fold("issue-1", history()[:2])

    view = fold("issue-1", [*history()[:2], unreadable])

    assert view.status == "assigned"
    assert view.lookback_due is None
    assert view.event_count == before.event_count + 1
    assert view.last_position == 3


def test_a_type_without_our_prefix_is_not_taken_for_one_of_ours() -> None:
    foreign = unknown(3, type="issue.resolved", data=resolution().model_dump(mode="json"))

    view = fold("issue-1", [*history()[:2], foreign])

    assert view.status == "assigned"
    assert view.event_count == 3


@pytest.mark.parametrize(
    ("status", "today", "overdue"),
    [
        ("assigned", DEADLINE, False),
        ("assigned", date(2026, 12, 5), True),
        ("reopened", date(2026, 12, 16), True),
        ("resolved", date(2026, 12, 16), False),
        ("closed", date(2026, 12, 16), False),
    ],
    ids=[
        "assigned on its deadline",
        "assigned the day after",
        "reopened past the deadline",
        "resolved past the deadline",
        "closed past the deadline",
    ],
)
def test_a_matter_is_overdue_when_still_open_after_its_deadline(
    status: IssueStatus, today: date, overdue: bool
) -> None:
    view = IssueView(issue_id="issue-1", status=status, deadline=DEADLINE)

    assert is_overdue(view, today) is overdue


def test_a_matter_without_a_deadline_is_not_overdue() -> None:
    view = IssueView(issue_id="issue-1", status="assigned")

    assert is_overdue(view, date(2027, 1, 1)) is False


def test_a_late_milestone_does_not_escalate_the_matter_itself() -> None:
    from minqing.shared.contract.events import IssueEscalated, IssueOverdue

    moment = datetime(2026, 12, 2, tzinfo=UTC)
    view = IssueView(issue_id="i", status="assigned")
    late = IssueOverdue(kind="milestone", due=date(2026, 12, 1), assignment_no=1, milestone=2)
    step_up = IssueEscalated(
        kind="milestone",
        level=1,
        to_role="responsible_person",
        to_person_id="p",
        to_person_name="P",
        due=date(2026, 12, 1),
        assignment_no=1,
        reason="r",
        milestone=2,
    )
    matter = IssueEscalated(
        kind="resolution",
        level=1,
        to_role="responsible_person",
        to_person_id="p",
        to_person_name="P",
        due=date(2026, 12, 1),
        assignment_no=1,
        reason="r",
    )

    assert apply(apply(view, late, moment), step_up, moment).escalation_level == 0
    assert apply(view, matter, moment).escalation_level == 1


def test_every_earlier_state_is_kept_with_the_time_it_ended() -> None:
    view, versions = fold_versions("issue-1", [*history(), unknown(4)])

    assert [(v.status, v.event_count, v.last_event_at, until) for v, until in versions] == [
        ("reported", 1, at(1), at(2)),
        ("assigned", 2, at(2), at(3)),
        ("resolved", 3, at(3), at(4)),  # an unknown type is a step of its own
    ]
    assert (view.status, view.event_count, view.last_event_at) == ("resolved", 4, at(4))
    assert fold("issue-1", [*history(), unknown(4)]) == view


def test_states_before_the_report_are_not_states_of_the_list() -> None:
    view, versions = fold_versions("issue-1", [unknown(1), recorded(2, report())])

    assert versions == []  # before its report the matter was not in the list
    assert view.status == "reported"


def test_a_lagging_clock_never_moves_a_matter_back_in_time() -> None:
    """Another service's clock may be behind: the states still follow one another."""
    late = [recorded(1, report(), at(5)), recorded(2, assignment(), at(3))]

    view, [(first, until)] = fold_versions("issue-1", late)

    assert first.last_event_at == until == at(5)  # an empty interval, never an overlap
    assert view.last_event_at == at(5)
    assert view.assigned_at == at(3)  # what the event says stays as it said


def test_a_projection_process_keeps_the_read_models_it_is_told_to() -> None:
    from minqing.services.projection.views import VIEWS, chosen, history, issues

    assert chosen("all") == VIEWS
    assert chosen("issues") == (issues,)
    assert chosen("issues,history,issues") == (issues, history)
    with pytest.raises(ValueError, match=r"unknown read model.*teleport.*history, issues"):
        chosen("teleport")


def test_each_read_model_is_one_package_that_uses_no_other_read_models_tables() -> None:
    """The list and the audit trail run and rebuild apart: neither imports the other, and
    no table belongs to two of them."""
    from pathlib import Path

    from minqing.services.projection import views

    root = Path(views.__file__).parent
    for view in views.VIEWS:
        others = [o.NAME for o in views.VIEWS if o is not view]
        for path in (root / view.NAME).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            for other in others:
                assert f"projection.views.{other}" not in text, f"{path} imports {other}"
    owned = [t.name for view in views.VIEWS for t in view.TABLES]
    assert len(owned) == len(set(owned)), owned
