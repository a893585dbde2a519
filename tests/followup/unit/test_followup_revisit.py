"""Followup's re-visits, pure: a resident's low score on a closed matter sends line staff
back; passed, it stays closed; failed, it is reopened exactly as a failed look-back reopens
it, counts as a failed look-back (the second failure goes to the leader in charge), and the
matter then goes round the loop again (assigned, resolved, a normal look-back, closed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from minqing.services.followup.domain import (
    Case,
    RecordLookback,
    Reopening,
    awaits_revisit,
    decide_lookback,
    decide_lookback_escalation,
    decide_revisit,
    evolve,
    flag_revisit,
    reopening,
)
from minqing.services.followup.escalation import Ladder, Person, Step
from minqing.shared.contract.events import (
    IssueAssigned,
    IssueLookbackPassed,
    IssueResolved,
    IssueRevisitRecorded,
)

FRIDAY = date(2026, 11, 27)
DUE = date(2026, 12, 8)
ladder = Ladder(
    steps=(Step(after_working_days=0, to="responsible_person"),),
    leaders={"default": Person(id="deputy", name="Deputy Mayor")},
)


def closed_flagged(failures: int = 0) -> Case:
    """A closed matter a resident's score of 1 sent line staff back to."""
    case = Case(
        status="closed",
        assignment_no=1,
        unit="town_construction",
        resolved_by="wu",
        lookback_unit="grid_center",
        lookback_failures=failures,
        title="Pump",
        village="xuma",
    )
    flagged = flag_revisit(case, "score 1: still broken", DUE)
    assert flagged is not None and awaits_revisit(flagged)
    return flagged


def test_a_passed_revisit_leaves_the_matter_closed_and_the_task_done() -> None:
    case = closed_flagged()
    passed = decide_revisit(case, RecordLookback("passed", "grid-li", "runs"), FRIDAY)
    assert (passed.outcome, passed.failures, passed.reopens) == ("passed", None, False)
    assert reopening(passed) is None
    assert decide_lookback_escalation(passed, case, ladder) is None
    after = evolve(case, passed)
    assert after is not None
    assert (after.status, after.revisit_reason, after.lookback_failures) == ("closed", None, 0)


def test_a_failed_revisit_reopens_the_matter_and_counts_as_a_failed_look_back() -> None:
    case = closed_flagged()
    failed = decide_revisit(case, RecordLookback("failed", "grid-li", "leaks again"), FRIDAY)
    assert (failed.outcome, failed.failures, failed.reopens) == ("failed", 1, True)
    assert reopening(failed) == Reopening("re-visit", "leaks again", DUE, 1, 1)
    assert decide_lookback_escalation(failed, case, ladder) is None  # the first failure

    after = evolve(case, failed)
    assert after is not None
    assert (after.status, after.lookback_failures) == ("reopened", 1)
    assert (after.revisit_reason, after.revisit_due) == (None, None)
    assert not awaits_revisit(after)
    assert after.title == "Pump" and after.village == "xuma"  # kept for the list


def test_a_failed_revisit_after_a_failed_look_back_goes_to_the_leader_in_charge() -> None:
    case = closed_flagged(failures=1)
    failed = decide_revisit(case, RecordLookback("failed", "grid-li", "leaks again"), FRIDAY)
    assert failed.failures == 2
    escalated = decide_lookback_escalation(failed, case, ladder)
    assert escalated is not None
    assert (escalated.kind, escalated.level, escalated.to_person_id) == (
        "lookback_failed",
        1,
        "deputy",
    )
    assert (escalated.due, escalated.assignment_no) == (DUE, 1)
    assert escalated.reason == "the re-visit failed, the matter's second failed visit: leaks again"


def test_a_failed_revisit_recorded_before_re_visits_reopened_leaves_it_closed() -> None:
    old = IssueRevisitRecorded(
        outcome="failed",
        visitor="grid-li",
        notes="leaks again",
        reason="score 1: still broken",
        due=DUE,
        within_window=True,
        assignment_no=1,
    )  # no ``failures``: recorded by the code before
    assert not old.reopens and reopening(old) is None
    after = evolve(closed_flagged(), old)
    assert after is not None and after.status == "closed" and after.revisit_reason is None


def test_the_reopened_matter_goes_round_the_loop_again_to_closed() -> None:
    case = closed_flagged()
    failed = decide_revisit(case, RecordLookback("failed", "grid-li", "leaks again"), FRIDAY)
    reopened = evolve(case, failed)
    again = IssueAssigned(
        unit="town_construction",
        responsible_person_id="p1",
        responsible_person_name="Wu",
        deadline=date(2026, 12, 4),
        working_days=5,
        assignment_no=2,
        reason="re-visit failed (grid-li): leaks again",
        category="roads",
        village="xuma",
        calendar="weekdays",
    )
    assigned = evolve(reopened, again)
    assert assigned is not None
    assert (assigned.status, assigned.assignment_no, assigned.lookback_failures) == (
        "assigned",
        2,
        1,
    )
    resolved = evolve(
        assigned,
        IssueResolved(
            unit="town_construction",
            summary="new seal",
            resolved_by="wu",
            assignment_no=2,
            lookback_due=date(2026, 12, 14),
        ),
    )
    assert resolved is not None and resolved.status == "resolved"
    visit = decide_lookback(resolved, RecordLookback("passed", "grid-li", "dry"), FRIDAY)
    assert isinstance(visit, IssueLookbackPassed)
    assert evolve(resolved, visit) == replace(resolved, status="closed")
    # a second failure at this look-back would have been the matter's second
    failed_again = decide_lookback(resolved, RecordLookback("failed", "g", "wet"), FRIDAY)
    assert decide_lookback_escalation(failed_again, resolved, ladder) is not None
