"""The audit trail in words: every event type has its sentence in Chinese and English, with
the reference data's names; what cannot be read still gets a sentence."""

from __future__ import annotations

from datetime import date

from minqing.services.projection.sentences import SENTENCES, Names, describe
from minqing.shared.contract.events import EVENT_CLASSES, IssueAssigned, IssueReported
from minqing.shared.contract.reference import load
from minqing.shared.service.settings import REFERENCE_DIR

NAMES = Names(load(REFERENCE_DIR))


def test_every_event_type_of_the_contract_has_a_sentence() -> None:
    assert set(EVENT_CLASSES) == set(SENTENCES)


def test_a_report_names_the_channel_the_village_and_the_category() -> None:
    reported = IssueReported(
        title="东西河危桥", description="d", category="bridges", village="sanqi", source="visit"
    )

    said = describe("minqing.issue.reported", 1, reported.model_dump(mode="json"), NAMES)

    assert said.zh == "经走访反映：「东西河危桥」，三岐村，桥梁"
    assert (
        said.en
        == "Reported through Door-to-door visit: \u201c东西河危桥\u201d, Sanqi Village, Bridges"
    )


def test_an_assignment_names_the_unit_the_person_the_deadline_and_its_calendar() -> None:
    assigned = IssueAssigned(
        unit="sanqi_branch",
        responsible_person_id="sanqi-secretary",
        responsible_person_name="王建国 Wang Jianguo",
        deadline=date(2027, 1, 4),
        working_days=5,
        assignment_no=1,
        reason="r",
        category="bridges",
        village="sanqi",
        calendar="cn-official (chinesecalendar 1.11.0)",
        deadline_provisional=True,
    )

    said = describe("minqing.issue.assigned", 2, assigned.model_dump(mode="json"), NAMES)

    # the calendar in words: the package that counted it stays in the event's data
    assert said.zh == (
        "交办三岐村党支部，责任人王建国，5个工作日内办结，期限 2027-01-04（暂定）"
        "（国家法定工作日历）"
    )
    assert "Sanqi Village party branch" in said.en and "(provisional)" in said.en
    assert said.en.endswith("(the official calendar)") and "chinesecalendar" not in said.en


def test_an_unknown_type_a_newer_version_and_unreadable_data_still_get_a_sentence() -> None:
    unknown = describe("minqing.issue.teleported", 1, {"to": "moon"}, NAMES)
    newer = describe("minqing.issue.reported", 9, {}, NAMES)
    unreadable = describe("minqing.issue.reported", 1, {"title": 5}, NAMES)

    assert "minqing.issue.teleported" in unknown.zh and "does not know" in unknown.en
    assert "newer version (9)" in newer.en
    assert "cannot be read" in unreadable.en
