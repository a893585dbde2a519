"""The feedback page of a link past its time, in a real browser (Debian's chromium, driven
by Playwright) through the front door (a real Caddy, its Content-Security-Policy): intake
runs on a clock the test moves 30 days past the reply, and the page says kindly, in
Chinese then in English, that the link expired and on which day, with no form, apart from
"already rated". axe-core finds no serious violation. Screenshot in test-artifacts/."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from minqing.services.intake.app import create_app
from minqing.shared.contract.events import IssueResolved
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.e2e.test_desk import ARTIFACTS, chromium
from tests.e2e.test_resident_pages import (
    intake_only,
    no_serious_violations,
    open_page,
    ready,
    serving,
)
from tests.support.clock import SetClock
from tests.support.events import FRIDAY_MORNING, assigned, envelope, publish
from tests.support.frontdoor import front_door
from tests.support.harness import eventually
from tests.support.identity import DESK, enrol
from tests.support.webhook import answering_to, webhook_receiver

pytestmark = pytest.mark.e2e

PHONE = {"width": 360, "height": 740}


async def test_an_expired_feedback_link_says_so_kindly_in_both_languages(
    settings: Settings, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    upstreams = intake_only(port)
    clock = SetClock(FRIDAY_MORNING)
    with webhook_receiver() as receiver, front_door(tmp_path, upstreams) as (door, _):
        url = door.url.rstrip("/")
        settings = answering_to(settings, receiver, feedback_base_url=url, feedback_days=30)
        app = create_app(settings, clock=clock)
        async with serving(app, port), async_playwright() as pw:
            await enrol(app.state.runtime.sessions)
            async with httpx.AsyncClient(base_url=url, headers=DESK) as desk:
                created = await desk.post(
                    "/api/v1/reports",
                    json={
                        "title": "路灯不亮",
                        "description": "三岐村村口三盏路灯不亮",
                        "category": "street_lights",
                        "village": "sanqi",
                        "source": "grid_center",
                        "reporter": {"name": "王五", "phone": "13912345678"},
                    },
                )
            assert created.status_code == 201, created.text
            issue_id = created.json()["issue_id"]
            await publish(settings, assigned(issue_id))
            resolved = IssueResolved(
                unit="town_construction",
                summary="更换了三盏路灯",
                resolved_by="person:wu-jun",
                assignment_no=1,
                lookback_due=date(2026, 12, 10),
            )
            await publish(
                settings, envelope(resolved, issue_id, actor="person:wu-jun", service="followup")
            )

            async def replies() -> list[dict[str, Any]]:
                return list(receiver.received)

            (sent,) = await eventually(replies, lambda r: len(r) == 1)
            link = sent["feedback_url"]
            assert link.startswith(f"{url}/feedback/")
            clock.advance(timedelta(days=31))  # sent Friday 27 November: expired 27 December

            browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
            try:
                context, phone = await open_page(browser, PHONE)
                page = phone.page
                await ready(page, link)
                expired = page.locator("#expired")
                await expect(expired).to_be_visible()
                await expect(expired).to_contain_text("这条评价链接已经过期了")
                await expect(expired).to_contain_text("已于 2026-12-27 到期")
                await expect(page.locator("#feedback-form")).to_be_hidden()
                await expect(page.locator("#used")).to_be_hidden()
                await expect(page.locator("#gone")).to_be_hidden()
                await no_serious_violations(page)
                await page.screenshot(
                    path=str(ARTIFACTS / "residents-feedback-expired-phone.png"), full_page=True
                )
                await page.click("#lang")
                await expect(expired).to_contain_text("This rating link has expired")
                await expect(expired).to_contain_text("expired on 2026-12-27")
                assert phone.errors == [] and phone.refused == []
                await context.close()
            finally:
                await browser.close()
