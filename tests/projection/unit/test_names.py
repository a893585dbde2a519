"""Who did what, in words: actors, people and units by name, reporters by their place on
the matter; never an id, a code or a reference."""

from __future__ import annotations

from datetime import date

from minqing.services.projection.sentences import Names, describe
from minqing.shared.contract.events import (
    IssueFeedbackRecorded,
    IssueReporterReplied,
    IssueResolved,
)
from minqing.shared.contract.reference import load
from minqing.shared.service.settings import Settings

NAMES = Names(load(Settings().reference_dir)).of_trail(
    {"person:wu.jun": "吴军 Wu Jun", "system:hotline-12345": "12345热线平台 12345 hotline"},
    {"rpt_FIRST": 1, "rpt_SECOND": 2},
)


def test_actors_are_named_in_both_languages() -> None:
    assert NAMES.who("service:assignment") == ("系统（派单）", "the system (assignment)")
    assert NAMES.who("followup") == ("系统（跟踪督办）", "the system (follow-up)")  # older events
    assert NAMES.who("person:wu.jun") == ("吴军", "Wu Jun")
    assert NAMES.who("system:hotline-12345") == ("12345热线平台", "12345 hotline")
    assert NAMES.who("person:nobody.known") == ("工作人员", "a staff member")
    assert NAMES.who("system:unknown") == ("外部系统", "an external system")


def test_people_and_units_by_code_and_names_as_written() -> None:
    assert NAMES.who("construction-head") == ("刘志强", "Liu Zhiqiang")
    assert NAMES.who("sanqi-secretary") == ("王建国", "Wang Jianguo")
    assert NAMES.who("town_construction") == ("建设管理所", "Town Construction Office")
    assert NAMES.who("王工 Wang") == ("王工", "Wang")


def test_reporters_are_named_by_their_place_never_by_reference() -> None:
    replied = IssueReporterReplied(
        reply_id="R-1",
        reporter_ref="rpt_SECOND",
        stage="closed",
        channel="webhook",
        attempts=1,
        feedback_link=False,
    )
    said = describe(
        f"minqing.{replied.TYPE}", replied.VERSION, replied.model_dump(mode="json"), NAMES
    )
    assert said.zh == "已就闭环答复第2位反映人（经短信平台发送）"
    assert (
        said.en == "Reporter no. 2 answered about its closing (sent through the messaging gateway)"
    )
    rated = IssueFeedbackRecorded(
        reply_id="R-2", reporter_ref="rpt_FIRST", stage="closed", score=5, comment="好"
    )
    said = describe(f"minqing.{rated.TYPE}", rated.VERSION, rated.model_dump(mode="json"), NAMES)
    assert (said.zh, said.en) == ("第1位反映人评价 5/5：好", "Reporter no. 1 rated it 5/5: 好")


def test_a_chinese_sentence_carries_no_english_name_parts() -> None:
    resolved = IssueResolved(
        unit="sanqi_branch",
        summary="修好了",
        resolved_by="person:wu.jun",
        assignment_no=1,
        lookback_due=date(2026, 12, 10),
    )
    said = describe(
        f"minqing.{resolved.TYPE}", resolved.VERSION, resolved.model_dump(mode="json"), NAMES
    )
    assert said.zh.startswith("三岐村党支部报告办结（销号），办理人 吴军：修好了")
    assert said.en.startswith(
        "Sanqi Village party branch reported it solved (cancellation), by Wu Jun"
    )
