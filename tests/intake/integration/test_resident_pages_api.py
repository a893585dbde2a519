"""The residents' public pages over real NATS and PostgreSQL, without a browser: the pages
and their files are served to anyone; a report through the page's Open311 key is followed
by its reference, in words, stage by stage (never a person, a code or another reporter's
words); the feedback link opens a page, says what it asks about, and says when it was used
or is unknown; the page's key can be revoked like any other."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from minqing.services.intake.app import create_app
from minqing.services.intake.channels.open311.keys import PAGE_KEY, revoke_key
from minqing.services.intake.residents.pages import STATIC
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import IssueLookbackFailed, IssueLookbackPassed, IssueResolved
from minqing.shared.service.settings import Settings
from tests.support.events import assigned, envelope, publish
from tests.support.harness import eventually, serve
from tests.support.webhook import Receiver, answering_to, webhook_receiver

PAGE_REPORT = {
    "service_code": "101",  # street lights
    "attribute[village]": "sanqi",
    "description": "村口三盏路灯不亮，晚上看不见路",
    "lat": "33.51",
    "long": "119.21",
    "first_name": "王五",
    "phone": "13912345678",
    "api_key": PAGE_KEY,
}
ANONYMOUS = {"authorization": "", "cookie": ""}  # the pages' visitors carry no credential


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def later(event: IssueResolved | IssueLookbackPassed | IssueLookbackFailed, issue: str) -> Envelope:
    return envelope(event, issue, actor="person:wu-jun", service="followup")


def resolved(summary: str) -> IssueResolved:
    return IssueResolved(
        unit="town_construction",
        summary=summary,
        resolved_by="吴军 Wu Jun",
        assignment_no=1,
        lookback_due=date(2026, 12, 10),
    )


def lookback(passed: bool, notes: str) -> IssueLookbackPassed | IssueLookbackFailed:
    kind = IssueLookbackPassed if passed else IssueLookbackFailed
    return kind(
        visitor="周敏 Zhou Min",
        notes=notes,
        assignment_no=1,
        lookback_due=date(2026, 12, 10),
        within_window=True,
    )


async def progress(client: httpx.AsyncClient, ref: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/progress/{ref}", headers=ANONYMOUS)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_page_report_is_followed_in_words_and_rated_once_through_its_link(
    settings: Settings, receiver: Receiver
) -> None:
    settings = answering_to(settings, receiver, feedback_base_url="https://minqing.example")
    async with serve(create_app(settings)) as client:
        for path in ("/report", "/follow", "/feedback/anything-at-all"):
            page = await client.get(path, headers=ANONYMOUS)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for name, kind in (("residents.js", "text/javascript"), ("residents.css", "text/css")):
            served = await client.get(f"/residents/{name}", headers=ANONYMOUS)
            assert served.headers["content-type"].startswith(kind)
            assert served.content == (STATIC / name).read_bytes()
        assert (await client.get("/residents/report.html", headers=ANONYMOUS)).status_code == 404

        created = await client.post(
            "/open311/v2/requests.json",
            data=PAGE_REPORT,
            files={"media": ("lamp.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")},
            headers={**ANONYMOUS, "Idempotency-Key": "page-form-1"},
        )
        assert created.status_code == 200, created.text
        ref = created.json()[0]["service_request_id"]

        seen = await progress(client, ref.lower())  # typed in lower case: the same reference
        assert seen["stage"] == "received" and seen["reference"] == ref
        assert seen["category"] == {"zh": "路灯", "en": "Street lights"}
        assert seen["village"] == {"zh": "三岐村", "en": "Sanqi Village"}
        assert seen["unit"] is None and seen["joined"] is False

        await publish(settings, assigned(ref))
        seen = await eventually(lambda: progress(client, ref), lambda p: p["stage"] == "assigned")
        assert seen["unit"] == {"zh": "建设管理所", "en": "Town Construction Office"}
        assert seen["deadline"] == "2026-12-18"

        await publish(settings, later(resolved("更换了三盏路灯"), ref))
        seen = await eventually(lambda: progress(client, ref), lambda p: p["stage"] == "resolved")
        assert (seen["summary"], seen["lookback_due"]) == ("更换了三盏路灯", "2026-12-10")
        await publish(settings, later(lookback(False, "还有一盏不亮"), ref))
        seen = await eventually(lambda: progress(client, ref), lambda p: p["stage"] == "reopened")
        assert seen["notes"] == "还有一盏不亮" and seen["summary"] == "更换了三盏路灯"
        await publish(settings, later(resolved("三盏都换了新灯"), ref))
        await publish(settings, later(lookback(True, "晚上都亮了"), ref))
        seen = await eventually(lambda: progress(client, ref), lambda p: p["stage"] == "closed")
        assert (seen["summary"], seen["notes"]) == ("三盏都换了新灯", "晚上都亮了")
        # Nothing of the people who did it, nor the reporter's own contact, nor a code.
        shown = str(seen)
        for never in ("吴军", "Wu Jun", "周敏", "王五", "139", "town_construction", "sanqi"):
            assert never not in shown, never

        # The replies' links open the feedback page; each says what it asks about.
        sent = await eventually(lambda: _async(receiver.received), lambda r: len(r) >= 3)
        links = [body["feedback_url"] for body in sent]
        assert all(link.startswith("https://minqing.example/feedback/") for link in links)
        token = links[0].rsplit("/", 1)[1]
        opened = await client.get(f"/feedback/{token}", headers=ANONYMOUS)
        assert opened.headers["content-type"].startswith("text/html")
        asked = await client.get(f"/api/v1/feedback/{token}", headers=ANONYMOUS)
        assert asked.json() == {
            "answered": False,
            "stage": "resolved",
            "category": {"zh": "路灯", "en": "Street lights"},
            "village": {"zh": "三岐村", "en": "Sanqi Village"},
            "summary": "三盏都换了新灯",
        }
        # A browser opening a link of the old form (the JSON endpoint) reaches the page.
        old = await client.get(
            f"/api/v1/feedback/{token}", headers={**ANONYMOUS, "accept": "text/html,*/*"}
        )
        assert old.status_code == 303 and old.headers["location"] == f"/feedback/{token}"

        rated = await client.post(
            f"/api/v1/feedback/{token}", json={"score": 4, "comment": "好"}, headers=ANONYMOUS
        )
        assert rated.status_code == 201, rated.text
        asked = await client.get(f"/api/v1/feedback/{token}", headers=ANONYMOUS)
        assert asked.json()["answered"] is True
        unknown = await client.get("/api/v1/feedback/no-reply-has-this-token", headers=ANONYMOUS)
        assert unknown.status_code == 404
        nobody = await client.get(f"/api/v1/progress/{'0' * 26}", headers=ANONYMOUS)
        assert nobody.status_code == 404


async def test_the_page_key_is_made_at_first_use_and_a_revoked_one_stays_revoked(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with serve(app) as client:
        first = await client.post("/open311/v2/requests.json", data=PAGE_REPORT, headers=ANONYMOUS)
        assert first.status_code == 200, first.text
        engine = app.state.runtime.engine
        await revoke_key(engine, "residents-page", datetime(2026, 12, 7, tzinfo=UTC))
        refused = await client.post(
            "/open311/v2/requests.json", data=PAGE_REPORT, headers=ANONYMOUS
        )
        assert refused.status_code == 403


async def _async(value: Any) -> Any:
    return value


async def test_the_pages_and_their_answers_count_against_the_anonymous_budget(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"rate_limit_anonymous": "3/minute"})
    async with serve(create_app(settings)) as client:
        paths = ("/report", "/residents/residents.js", f"/api/v1/progress/{'0' * 26}")
        answers = [(await client.get(path, headers=ANONYMOUS)).status_code for path in paths]
        assert answers == [200, 200, 404]
        over = await client.get("/follow", headers=ANONYMOUS)
        assert over.status_code == 429 and int(over.headers["retry-after"]) > 0
        posted = await client.post("/open311/v2/requests.json", data=PAGE_REPORT, headers=ANONYMOUS)
        assert posted.status_code == 429


async def test_a_report_that_joins_an_earlier_matter_follows_that_matter(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"duplicate_threshold": 80})
    async with serve(create_app(settings)) as client:
        refs = []
        for words in ("村口三盏路灯不亮，晚上看不见路", "村口三盏路灯不亮，晚上看不清路"):
            sent = await client.post(
                "/open311/v2/requests.json",
                data={**PAGE_REPORT, "description": words},
                headers=ANONYMOUS,
            )
            assert sent.status_code == 200, sent.text
            refs.append(sent.json()[0]["service_request_id"])
        first, second = refs
        assert (await progress(client, first))["joined"] is False
        joined = await progress(client, second)
        assert joined["joined"] is True and joined["reference"] == second
        await publish(settings, assigned(first))
        seen = await eventually(
            lambda: progress(client, second), lambda p: p["stage"] != "received"
        )
        assert seen["stage"] == "assigned" and seen["unit"]["zh"] == "建设管理所"
