"""Intake: a new report becomes the fact that the matter is on the list."""

from __future__ import annotations

from typing import Any

import pytest

from minqing.services.intake.domain import (
    OpenMatter,
    ReportIssue,
    decide_report,
    find_duplicate,
    mask_phone,
    similarity,
)


def command(**overrides: Any) -> ReportIssue:
    values: dict[str, Any] = {
        "title": "Sheep smell from the neighbour's pen",
        "description": "The pen is two metres from our kitchen window",
        "category": "neighbour_dispute",
        "village": "qizhuang",
        "source": "hotline_12345",
        "reporter_name": "Zhang San",
        "reporter_phone": "138 0000 1234",
        "address": "Qizhuang group 3",
        "lat": 33.49,
        "lon": 119.25,
    }
    values.update(overrides)
    return ReportIssue(**values)


def test_a_report_never_carries_the_reporters_name_or_phone() -> None:
    reported = decide_report(command(), reporter_ref="ref-1")
    as_json = reported.model_dump_json()

    assert "Zhang San" not in as_json
    assert "138 0000 1234" not in as_json
    assert not {"reporter_name", "reporter_phone"} & set(reported.model_dump())


def test_the_reporter_is_known_only_by_reference() -> None:
    assert decide_report(command(), reporter_ref="ref-1").reporter_ref == "ref-1"


def test_an_anonymous_report_has_no_reporter_reference() -> None:
    anonymous = command(reporter_name=None, reporter_phone=None)

    assert anonymous.has_reporter is False
    assert decide_report(anonymous, reporter_ref=None).reporter_ref is None


def test_a_name_or_a_phone_alone_is_enough_to_have_a_reporter() -> None:
    assert command(reporter_phone=None).has_reporter is True
    assert command(reporter_name=None).has_reporter is True


def test_a_report_carries_the_matter_and_where_it_is() -> None:
    reported = decide_report(command(), reporter_ref=None)

    assert reported.title == "Sheep smell from the neighbour's pen"
    assert reported.description == "The pen is two metres from our kitchen window"
    assert reported.category == "neighbour_dispute"
    assert reported.village == "qizhuang"
    assert reported.source == "hotline_12345"
    assert (reported.address, reported.lat, reported.lon) == ("Qizhuang group 3", 33.49, 119.25)


def test_the_actor_is_the_authenticated_principal_never_the_name_recorded() -> None:
    recorded = command(recorded_by="cadre-li", actor_id="person:wang")
    assert recorded.actor == "person:wang"
    assert decide_report(recorded, None).on_behalf_of == "cadre-li"  # kept beside it


def test_without_a_principal_the_actor_is_the_department_system_of_the_source() -> None:
    assert command().actor == "system:hotline_12345"  # a message on its NATS subject
    assert command(recorded_by="cadre-li").actor == "system:hotline_12345"


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("138 1234 5678", "138****5678"),
        ("+86 138-1234-5678", "138****5678"),
        ("0517-8288 1234", "051****1234"),
        ("12345", "***45"),
        (None, None),
    ],
)
def test_a_phone_is_masked_to_its_first_three_and_last_four_digits(
    phone: str | None, masked: str | None
) -> None:
    assert mask_phone(phone) == masked


def test_events_carry_the_masked_phone_only() -> None:
    reported = decide_report(command(reporter_phone="13812345678"), reporter_ref="r")

    assert reported.reporter_phone_masked == "138****5678"
    assert "13812345678" not in reported.model_dump_json()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("石官路路灯不亮", "石官路路灯不亮了"),
        ("Street lights on Shiguan Road are out", "street lights on shiguan road: out!"),
    ],
)
def test_near_identical_titles_match_in_chinese_and_english(a: str, b: str) -> None:
    assert similarity(a, b) >= 85


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("石官路路灯不亮", "中心街路灯不亮"),
        ("Street lights on Shiguan Road are out", "Pothole on Main street"),
    ],
)
def test_different_problems_stay_below_the_default_threshold(a: str, b: str) -> None:
    assert similarity(a, b) < 85


def test_the_most_alike_open_matter_is_the_match() -> None:
    candidates = [OpenMatter("a", "石官路路灯坏了"), OpenMatter("b", "石官路路灯不亮")]

    match = find_duplicate("石官路路灯不亮了", candidates, threshold=85)

    assert match is not None and match.issue_id == "b"
    assert find_duplicate("石官路路灯不亮了", candidates, threshold=101) is None
