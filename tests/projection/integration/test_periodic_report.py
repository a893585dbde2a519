"""The periodic report of a seeded month: the town's, each village's and each unit's
figures, the rankings and the change from the month before, each figure computed here by
hand from what was seeded; the same report again after more events, with the same
``as_of``; the XLSX workbook; and periods that cannot be read."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from minqing.services.projection.app import create_app
from minqing.services.projection.monthly import Period, score
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import (
    Event,
    IssueEscalated,
    IssueFeedbackRecorded,
    IssueLookbackPassed,
    IssueResolved,
)
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.support.events import FRIDAY_MORNING, assigned, envelope, publish, reported
from tests.support.harness import eventually, serve

LATER = datetime(2027, 1, 4, 2, 0, tzinfo=UTC)
AS_OF = "2027-01-01T00:00:00+08:00"  # the report "as of" New Year's Day, in Shihu


@pytest.fixture
async def projection(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings, clock=lambda: LATER)) as client:
        yield client


def at(e: Envelope, moment: datetime) -> Envelope:
    return e.model_copy(update={"time": moment})


def step(issue_id: str, data: Event, moment: datetime) -> Envelope:
    return at(envelope(data, issue_id, actor="service:followup", service="followup"), moment)


def resolved(issue_id: str, moment: datetime) -> Envelope:
    return step(
        issue_id,
        IssueResolved(
            unit="town_construction",
            summary="done",
            resolved_by="w",
            assignment_no=1,
            lookback_due=date(2026, 12, 31),
        ),
        moment,
    )


def passed(issue_id: str, moment: datetime) -> Envelope:
    return step(
        issue_id,
        IssueLookbackPassed(
            visitor="v",
            notes="ok",
            assignment_no=1,
            lookback_due=date(2026, 12, 31),
            within_window=True,
        ),
        moment,
    )


def feedback(issue_id: str, score: int, moment: datetime) -> Envelope:
    return step(
        issue_id,
        IssueFeedbackRecorded(
            reply_id=new_id(), reporter_ref="p", stage="resolved", score=score, comment=""
        ),
        moment,
    )


async def test_a_seeded_month_gives_the_figures_rankings_and_change_counted_by_hand(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    day = FRIDAY_MORNING  # 27 November 2026, 09:00 in Shihu
    october = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)
    a, b, c, d = (new_id() for _ in range(4))
    # November: a and b in Xuma (Town Construction), c in Sanqi (the water station).
    # a: resolved 4 days in (due 18 Dec: on time), look-back passed, feedback 5.
    # b: resolved 30 days in (27 Dec: late), feedback 2, no look-back yet.
    # c: assigned, not resolved by New Year: overdue then, and escalated.
    # October: d in Xuma, resolved, look-back passed.
    await publish(
        settings,
        reported(a),
        reported(b),
        reported(c, village="sanqi", category="water"),
        at(assigned(a), day + timedelta(hours=1)),
        at(assigned(b), day + timedelta(hours=1)),
        at(assigned(c, unit="water_station"), day + timedelta(hours=1)),
        resolved(a, day + timedelta(days=4)),
        passed(a, day + timedelta(days=6)),
        feedback(a, 5, day + timedelta(days=7)),
        resolved(b, day + timedelta(days=30)),
        feedback(b, 2, day + timedelta(days=30, hours=1)),
        step(
            c,
            IssueEscalated(
                kind="resolution",
                level=1,
                to_role="town_leader",
                to_person_id="deputy-mayor",
                to_person_name="Zhao",
                due=date(2026, 12, 18),
                assignment_no=1,
                reason="past its deadline",
            ),
            day + timedelta(days=22),
        ),
        at(reported(d), october),
        at(assigned(d), october + timedelta(hours=1)),
        resolved(d, october + timedelta(days=3)),
        passed(d, october + timedelta(days=5)),
    )

    async def report() -> dict[str, Any]:
        answer = await projection.get(
            "/api/v1/report", params={"period": "2026-11", "as_of": AS_OF}
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def trail(issue_id: str) -> int:
        answer = await projection.get(f"/api/v1/issues/{issue_id}/history")
        return len(answer.json().get("events", []))

    # the audit trail (look-backs, feedback) and the list (the rest) are kept apart: both in
    await eventually(lambda: trail(d), lambda n: n == 4)
    first = await eventually(report, lambda r: r["town"]["escalated"] == 1)
    town = first["town"]
    # By hand: three matters; one closed loop; all three assigned; a closed and b resolved
    # of three; a on time of a and b resolved; one feedback of two at 4 or 5; a's one
    # look-back passed; c past its deadline at New Year; c escalated.
    assert town["matters"] == 3 and town["closed_loop"] == 1
    assert town["by_channel"] == {"village_branch": 3}
    assert town["response_rate"] == 1.0
    assert town["resolution_rate"] == round(2 / 3, 4)
    assert town["on_time_rate"] == 0.5
    assert town["satisfaction_rate"] == 0.5
    assert town["lookback_pass_rate"] == 1.0
    assert town["overdue"] == 1 and town["escalated"] == 1
    assert town["score"] == round(100 * (0.3 * 0.6667 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 1.0), 1)
    # October: d alone, closed; the change is this month less that one.
    assert first["previous"]["label"] == "2026-10"
    assert first["town_change"]["matters"] == 3 - 1
    assert first["town_change"]["closed_loop"] == 1 - 1

    villages = {v["code"]: v for v in first["villages"]}
    assert [v["code"] for v in first["villages"]] == ["xuma", "sanqi"]
    xuma, sanqi = villages["xuma"], villages["sanqi"]
    assert xuma["rank"] == 1 and xuma["name"] == "徐马村"
    assert xuma["figures"]["matters"] == 2 and xuma["figures"]["resolution_rate"] == 1.0
    # Xuma: resolution 1, satisfaction 0.5, on time 0.5, look-back 1 -> 75; in October
    # (d: resolution 1, on time 1, look-back 1, no feedback) -> 100 over the rates there were.
    assert xuma["figures"]["score"] == 75.0
    assert xuma["change"]["score"] == 75.0 - 100.0
    assert xuma["change"]["matters"] == 2 - 1
    # Sanqi: only its resolution rate (0) is measured: score 0, ranked after Xuma; nothing
    # in October, so no change of score can be said.
    assert sanqi["rank"] == 2 and sanqi["figures"]["score"] == 0.0
    assert sanqi["figures"]["overdue"] == 1 and sanqi["change"]["score"] is None
    units = {u["code"]: u for u in first["units"]}
    assert units["town_construction"]["figures"]["matters"] == 2
    assert units["water_station"]["figures"]["escalated"] == 1
    assert first["names"]["villages"]["xuma"]["en"]

    # Later events change nothing in the report as of New Year.
    await publish(settings, resolved(c, LATER), passed(b, LATER))
    await eventually(
        lambda: projection.get("/api/v1/report", params={"period": "2026-11"}),
        lambda r: r.json()["town"]["closed_loop"] == 2,
    )
    await eventually(lambda: trail(b), lambda n: n == 5)  # its look-back is in the trail too
    assert await report() == first

    book = await projection.get(
        "/api/v1/report", params={"period": "2026-11", "as_of": AS_OF, "format": "xlsx"}
    )
    assert book.status_code == 200
    sheets = load_workbook(io.BytesIO(book.content))
    assert sheets.sheetnames == ["全镇", "村排名", "单位排名"]
    ranking = list(sheets["村排名"].iter_rows(values_only=True))
    assert ranking[1][:3] == (1, "徐马村", "xuma") and ranking[2][:3] == (2, "三岐村", "sanqi")

    page = await projection.get(
        "/api/v1/report", params={"period": "2026-11", "as_of": AS_OF, "format": "html"}
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "民情办理通报 2026-11" in text and "Xuma Village" in text
    assert text.index("徐马村") < text.index("三岐村")  # ranked
    assert "75.0 (-25)" in text  # Xuma's score and its change from October
    assert "<script" not in text and "style=" not in text  # the CSP's rules


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"period": "2026-13"}, "no month 13"),
        ({"period": "November"}, "expected YYYY-MM or YYYY-Qn"),
        ({"from": "2026-11-30", "to": "2026-11-01"}, "is before from"),
        ({"from": "2026-11-01"}, "both from and to"),
        ({"period": "2026-11", "from": "2026-11-01", "to": "2026-11-02"}, "not both"),
    ],
)
async def test_a_period_that_cannot_be_read_is_a_422_saying_why(
    projection: httpx.AsyncClient, params: dict[str, str], says: str
) -> None:
    answer = await projection.get("/api/v1/report", params=params)
    assert answer.status_code == 422 and says in answer.json()["detail"], answer.text


def test_periods_and_the_ones_before_them() -> None:
    assert Period.read("2026-02", None, None) == Period(
        date(2026, 2, 1), date(2026, 2, 28), "2026-02"
    )
    assert Period.read("2026-01", None, None).previous().label == "2025-12"
    quarter = Period.read("2026-Q1", None, None)
    assert (quarter.first, quarter.last) == (date(2026, 1, 1), date(2026, 3, 31))
    assert quarter.previous().label == "2025-Q4"
    days = Period.read(None, date(2026, 11, 10), date(2026, 11, 16))
    assert days.previous() == Period(date(2026, 11, 3), date(2026, 11, 9), "2026-11-03..2026-11-09")


def test_the_score_weighs_the_rates_there_are() -> None:
    assert score({}) is None
    assert score({"resolution_rate": 0.5}) == 50.0
    assert score({"resolution_rate": 1.0, "satisfaction_rate": 0.0}) == 50.0
    every = {
        "resolution_rate": 1,
        "satisfaction_rate": 1,
        "on_time_rate": 0,
        "lookback_pass_rate": 0,
    }
    assert score(every) == 60.0
