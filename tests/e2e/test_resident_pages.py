"""The residents' pages in a real browser (Debian's chromium, driven by Playwright), on a
phone (360 px) and on a desktop, through the front door (a real Caddy running the Caddyfile
generated from the services as built now, its Content-Security-Policy on every answer): a
resident sends an empty form and a file that is no photo and is told, in Chinese, which
field is wrong; reports a broken street light with a photo and the phone's location, gets a
reference, follows the matter by it as it is assigned and resolved (in Chinese, then in
English); opens the feedback link from the reply, rates it (a missing score named first),
and opening the link again says kindly that it was used; an unknown link says it no longer
works. axe-core finds no serious violation on any page. Screenshots in test-artifacts/."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import zlib
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from minqing.services.frontdoor import CONTENT_SECURITY_POLICY
from minqing.services.intake.app import create_app
from minqing.shared.contract.events import IssueResolved
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.e2e.test_desk import ARTIFACTS, chromium, no_serious_violations
from tests.support.events import assigned, envelope, publish
from tests.support.frontdoor import front_door
from tests.support.harness import eventually
from tests.support.identity import DESK, enrol
from tests.support.tour import keep
from tests.support.webhook import Receiver, answering_to, webhook_receiver

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.e2e

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
SANQI = {"latitude": 33.51, "longitude": 119.21}


def noisy_png(side: int) -> bytes:
    """A real PNG of ``side`` x ``side`` random pixels: as large as a camera's photo, since
    noise does not compress."""
    rows = b"".join(b"\x00" + os.urandom(side * 3) for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )


DESCRIPTION = "三岐村村口三盏路灯不亮，晚上看不见路"


@contextlib.asynccontextmanager
async def serving(app: FastAPI, port: int) -> AsyncIterator[str]:
    """The app, its lifespan run, on ``port`` (the front door's upstream, chosen before)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Watched:
    """A browser context's page, with its script errors and what the policy refused."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.refused: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda m: self.refused.append(m.text) if "Content Security Policy" in m.text else None,
        )


async def open_page(browser: Browser, viewport: dict[str, int]) -> tuple[BrowserContext, Watched]:
    context = await browser.new_context(
        locale="zh-CN", viewport=viewport, geolocation=SANQI, permissions=["geolocation"]
    )
    return context, Watched(await context.new_page())


def intake_only(port: int) -> dict[Any, str]:
    """The front door's upstreams for the residents' pages: intake on ``port``; the other
    services are not needed by them."""
    elsewhere = "127.0.0.1:1"
    return {
        "intake": f"127.0.0.1:{port}",
        "assignment": elsewhere,
        "followup": elsewhere,
        "projection": elsewhere,
    }


async def ready(page: Page, url: str) -> None:
    await page.goto(url)
    await page.wait_for_selector("body[data-ready=true]")


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"residents-{name}.png"), full_page=True)
    await keep(page, f"residents-{name}")


async def test_a_resident_reports_follows_and_rates_a_matter_on_a_phone_and_a_desktop(
    settings: Settings, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    upstreams = intake_only(port)
    with webhook_receiver() as receiver, front_door(tmp_path, upstreams) as (door, _):
        url = door.url.rstrip("/")
        settings = answering_to(settings, receiver, feedback_base_url=url)
        app = create_app(settings)
        async with serving(app, port), async_playwright() as pw:
            await enrol(app.state.runtime.sessions)
            async with httpx.AsyncClient(base_url=url) as anyone:
                for path in ("/report", "/follow", "/feedback/x", "/residents/residents.js"):
                    answer = await anyone.get(path)
                    assert answer.status_code == 200, (path, answer.status_code)
                    policy = answer.headers["content-security-policy"]
                    assert policy == CONTENT_SECURITY_POLICY
            browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
            watched: list[Watched] = []
            try:
                context, phone = await open_page(browser, PHONE)
                watched.append(phone)
                page = phone.page
                await ready(page, url + "/report")
                assert await page.title() == "民情 · 我要反映"
                await no_serious_violations(page)
                await shot(page, "report-phone")

                # An empty form: each missing field named, in Chinese, on the page.
                await page.click("#submit")
                errors = page.locator("#errors")
                await expect(errors).to_be_visible()
                await expect(errors).to_contain_text("事项类别：请从列表中选一项")
                await expect(errors).to_contain_text("村（社区）：必须填写")
                await expect(errors).to_contain_text("位置：请用手机定位，或者写清地点")
                await expect(page.locator("#e-village")).to_have_text("必须填写")
                assert await page.get_attribute("#category", "aria-invalid") == "true"
                await no_serious_violations(page)
                await shot(page, "report-errors-phone")

                # Too long a description and a phone that is not one: both named at once.
                await page.select_option("#category", label="路灯")
                await page.select_option("#village", label="三岐村")
                await page.fill("#description", "灯" * 4001)
                await page.fill("#address", "三岐村村口")
                await page.fill("#phone", "call me")
                await page.click("#submit")
                await expect(errors).to_contain_text("情况描述：太长了，最多 4000 个字")
                await expect(errors).to_contain_text("手机号：手机号格式不对（只写数字）")
                await expect(page.locator("#errors li")).to_have_count(2)
                await page.fill("#description", DESCRIPTION)
                await page.fill("#phone", "")

                # A file that is no photo: the photo is named.
                page_file = {"name": "lamp.png", "mimeType": "image/png", "buffer": b"<html>"}
                await page.set_input_files("#photo", files=[page_file])
                await page.click("#submit")
                await expect(page.locator("#e-photo")).to_have_text("这个文件不是能打开的照片")
                await expect(errors).to_contain_text("照片：这个文件不是能打开的照片")

                # The real report: a camera-sized photo (shown before it is sent, then made
                # smaller), the phone's location.
                big = noisy_png(1000)
                assert len(big) > 2_500_000
                photo = {"name": "lamp.png", "mimeType": "image/png", "buffer": big}
                await page.set_input_files("#photo", files=[photo])
                await expect(page.locator("#preview")).to_be_visible()
                await page.click("#locate")
                await expect(page.locator("#located")).to_contain_text("已定位（33.51000")
                await page.fill("#name", "王五")
                await page.fill("#phone", "13912345678")
                await page.click("#submit")
                await expect(page.locator("#done")).to_be_visible()
                await expect(errors).to_be_hidden()
                ref = (await page.locator("#reference").inner_text()).strip()
                assert len(ref) == 26
                await shot(page, "reported-phone")

                async with httpx.AsyncClient(base_url=url, headers=DESK) as desk:
                    shown = (await desk.get(f"/open311/v2/requests/{ref}.json")).json()[0]
                    assert shown["media_url"] and shown["lat"] == SANQI["latitude"]
                    assert shown["description"] == DESCRIPTION
                    photo_back = await desk.get(shown["media_url"])
                    assert photo_back.headers["content-type"] == "image/jpeg"
                    assert photo_back.content[:3] == b"\xff\xd8\xff"
                    assert len(photo_back.content) < len(big)

                # Followed by the reference: received, then assigned and resolved.
                await page.click("#follow-link")
                await page.wait_for_selector("body[data-ready=true]")
                await expect(page.locator("#p-stage")).to_have_text("已受理，正在安排")
                await expect(page.locator("#p-facts")).to_contain_text(ref)
                await no_serious_violations(page)
                await publish(settings, assigned(ref))
                resolved = IssueResolved(
                    unit="town_construction",
                    summary="更换了三盏路灯",
                    resolved_by="吴军 Wu Jun",
                    assignment_no=1,
                    lookback_due=date(2026, 12, 10),
                )
                await publish(
                    settings, envelope(resolved, ref, actor="person:wu-jun", service="followup")
                )
                sent = await eventually(lambda: _now(receiver), lambda r: len(r.received) == 1)
                link = sent.received[0]["feedback_url"]
                assert link.startswith(f"{url}/feedback/")
                await page.reload()
                await page.wait_for_selector("body[data-ready=true]")
                await expect(page.locator("#p-stage")).to_have_text("已办结，等待回头看")
                facts = page.locator("#p-facts")
                await expect(facts).to_contain_text("建设管理所")
                await expect(facts).to_contain_text("更换了三盏路灯")
                text = await page.locator("main").inner_text()
                for never in ("吴军", "Wu Jun", "王五", "13912345678", "town_construction"):
                    assert never not in text, never
                await shot(page, "follow-phone")
                await page.click("#lang")
                await expect(page.locator("#p-stage")).to_have_text(
                    "Done, a look-back visit will check"
                )
                await expect(facts).to_contain_text("Town Construction Office")
                await shot(page, "follow-english-phone")
                await page.click("#lang")  # back to Chinese for the rest

                # The reply's link: a page, a missing score named, then a low score taken.
                await ready(page, link)
                await expect(page.locator("#fb-about")).to_have_text(
                    "您反映的三岐村“路灯”问题已经办结。"
                )
                await expect(page.locator("#fb-summary")).to_have_text("办理结果：更换了三盏路灯")
                await no_serious_violations(page)
                await page.fill("#comment", "还有一盏不亮")
                await page.click("#submit")
                await expect(page.locator("#e-score")).to_have_text("请选一个 1 到 5 的分数")
                await expect(page.locator("#errors")).to_contain_text("满意度：")
                await shot(page, "feedback-errors-phone")
                await page.check("input[name=score][value='2']")
                await page.click("#submit")
                await expect(page.locator("#thanks")).to_be_visible()
                await expect(page.locator("#revisit")).to_be_visible()
                await shot(page, "feedback-thanks-phone")
                async with httpx.AsyncClient(base_url=url, headers=DESK) as desk:
                    revisits = (await desk.get("/api/v1/revisits")).json()
                    assert [(r["issue_id"], r["score"]) for r in revisits] == [(ref, 2)]
                    assert revisits[0]["comment"] == "还有一盏不亮"

                # The same link again: used, said kindly; an unknown one: no longer works.
                await ready(page, link)
                await expect(page.locator("#used")).to_be_visible()
                await expect(page.locator("#used")).to_contain_text("这条链接已经评价过了")
                await expect(page.locator("#feedback-form")).to_be_hidden()
                await no_serious_violations(page)
                await shot(page, "feedback-used-phone")
                await ready(page, url + "/feedback/no-reply-has-this-token-at-all")
                await expect(page.locator("#gone")).to_contain_text("这条评价链接用不了了")
                await shot(page, "feedback-gone-phone")
                await context.close()

                # On a desktop: the same pages, laid out wide.
                context, desktop = await open_page(browser, DESKTOP)
                watched.append(desktop)
                page = desktop.page
                await ready(page, url + "/report")
                await shot(page, "report-desktop")
                await no_serious_violations(page)
                await ready(page, f"{url}/follow?ref={ref}")
                await expect(page.locator("#p-stage")).to_have_text("已办结，等待回头看")
                await no_serious_violations(page)
                await shot(page, "follow-desktop")
                await ready(page, url + "/follow")
                await page.fill("#ref", "not-a-reference")
                await page.click("button[type=submit]")
                await expect(page.locator("#e-ref")).to_have_text("编号是 26 位字母和数字，请核对")
                await page.fill("#ref", "0" * 26)
                await page.click("button[type=submit]")
                await expect(page.locator("#e-ref")).to_have_text("没有找到这个编号，请核对后再查")
                await ready(page, link)
                await expect(page.locator("#used")).to_be_visible()
                await shot(page, "feedback-used-desktop")
                await context.close()
            finally:
                await browser.close()
    for one in watched:
        assert one.errors == []  # no script error on any page
        assert one.refused == []  # nothing the front door's policy forbids


async def _now(value: Receiver) -> Receiver:
    return value
