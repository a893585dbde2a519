"""A reply's feedback link lasts MINQING_FEEDBACK_DAYS after the reply was sent, by the
service's clock (a fixed one here), over real NATS and PostgreSQL: within its time it asks
and takes an answer; past it, the API answers 410 Gone with a sentence naming the day it
expired (the page's question with ``expired_on`` for the page to say so kindly), distinct
from a link already answered (409, or ``answered`` on the question) and from an unknown
one (404)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from minqing.services.intake.app import create_app
from minqing.shared.contract.events import IssueResolved
from minqing.shared.service.settings import Settings
from tests.support.clock import SetClock
from tests.support.events import FRIDAY_MORNING, assigned, envelope, publish
from tests.support.harness import eventually, serve
from tests.support.webhook import Receiver, answering_to, webhook_receiver

ANONYMOUS = {"authorization": "", "cookie": ""}  # the pages' visitors carry no credential
REPORT = {
    "title": "Bridge deck shakes",
    "description": "The deck of the footbridge shakes when people cross",
    "category": "roads",
    "village": "xuma",
    "source": "grid_center",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


async def _replies(receiver: Receiver) -> list[dict[str, Any]]:
    return list(receiver.received)


async def test_a_feedback_link_expires_its_days_after_the_reply_kindly_and_apart_from_used(
    settings: Settings, receiver: Receiver
) -> None:
    settings = answering_to(
        settings, receiver, feedback_base_url="https://minqing.example", feedback_days=30
    )
    clock = SetClock(FRIDAY_MORNING)  # 09:00 in Shihu: the replies are sent now
    async with serve(create_app(settings, clock=clock)) as client:
        tokens = []
        for n in range(2):
            reporter = {"name": f"Reporter {n}", "phone": f"1391234567{n}"}
            body = {**REPORT, "title": f"{REPORT['title']} {n}", "reporter": reporter}
            created = await client.post("/api/v1/reports", json=body)
            assert created.status_code == 201, created.text
            issue_id = created.json()["issue_id"]
            await publish(settings, assigned(issue_id))
            resolved = IssueResolved(
                unit="town_construction",
                summary="New deck boards",
                resolved_by="person:wu-jun",
                assignment_no=1,
                lookback_due=date(2026, 12, 8),
            )
            await publish(
                settings, envelope(resolved, issue_id, actor="person:wu-jun", service="followup")
            )
            want = n + 1
            sent = await eventually(lambda: _replies(receiver), lambda r, w=want: len(r) == w)
            tokens.append(sent[n]["feedback_url"].rsplit("/", 1)[1])
        answered, waiting = tokens

        rated = await client.post(
            f"/api/v1/feedback/{answered}", json={"score": 5}, headers=ANONYMOUS
        )
        assert rated.status_code == 201, rated.text

        # The last moment of its 30 days: still asked, still answered.
        clock.now = FRIDAY_MORNING + timedelta(days=30) - timedelta(seconds=1)
        asked = await client.get(f"/api/v1/feedback/{waiting}", headers=ANONYMOUS)
        assert asked.status_code == 200 and asked.json()["answered"] is False

        # Past it: 410, saying when; an answered link still says it was answered.
        clock.now = FRIDAY_MORNING + timedelta(days=30)
        sentence = (
            "this feedback link expired on 2026-12-27 (30 days after the answer was sent); "
            "if the problem is not solved, please report it again"
        )
        asked = await client.get(f"/api/v1/feedback/{waiting}", headers=ANONYMOUS)
        assert asked.status_code == 410
        assert asked.json() == {"detail": sentence, "expired_on": "2026-12-27"}
        late = await client.post(
            f"/api/v1/feedback/{waiting}", json={"score": 1, "comment": "晚了"}, headers=ANONYMOUS
        )
        assert late.status_code == 410 and late.json() == {"detail": sentence}
        used = await client.get(f"/api/v1/feedback/{answered}", headers=ANONYMOUS)
        assert used.status_code == 200 and used.json()["answered"] is True
        again = await client.post(
            f"/api/v1/feedback/{answered}", json={"score": 1}, headers=ANONYMOUS
        )
        assert again.status_code == 409
        unknown = await client.get("/api/v1/feedback/no-reply-has-this-token", headers=ANONYMOUS)
        assert unknown.status_code == 404
        # the browser's page for an expired link is the feedback page, as for any
        page = await client.get(f"/feedback/{waiting}", headers=ANONYMOUS)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
