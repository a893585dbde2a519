"""The supervisors' desk in a real browser (Debian's chromium, driven by Playwright): log in
(a wrong password first), see who is logged in, find the Sanqi Village bridge by typing part
of its name, open its timeline, see who resolved it and who looked back, export the list,
switch to English, read the statistics and the weekly trends; a stored script in a title
stays text; an ended session brings the form back over the page, which keeps its state;
after logging out the list is out of reach; other roles see only what the matrix lets them
call; too many wrong passwords say how long to wait. On a desktop and on a 360 px phone the
visible text never shows an internal code (person ids, ``service:``/``person:`` actors,
``rpt_`` references, unit codes), and the English switch turns the whole page (labels,
charts, the timeline's sentences and who did each step) and is remembered. Screenshots are
kept in test-artifacts/."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from fastapi import FastAPI
from limits import parse as parse_limit
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minqing.services.frontdoor import CONTENT_SECURITY_POLICY
from minqing.services.projection.app import create_app
from minqing.shared.contract.events import (
    IssueAssigned,
    IssueLookbackPassed,
    IssueReported,
    IssueReporterReplied,
    IssueResolved,
)
from minqing.shared.contract.reference import load
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.support.events import assigned, envelope, publish, reported
from tests.support.harness import eventually
from tests.support.identity import AS, PEOPLE, TOWN, enrol, give_password
from tests.support.paths import ROOT
from tests.support.tour import keep

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts"


CHINESE_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")

PASSWORD = "dongxi-river-bridge"
ZHAO = Principal(Kind.PERSON, "zhao.min", "赵敏 Zhao Min", (Membership(TOWN, Role.SUPERVISOR),))
# Titles a hostile reporter could send: shown as text, never run.
IMG_TITLE = "<img src=x onerror=\"window.__xss='img'\">"
SCRIPT_TITLE = "<script>window.__xss='script'</script>"


# What the residents and staff wrote (titles, summaries, notes): shown as written in either
# language; everything else on the page is the desk's own words and names.
WRITTEN = ("三岐村东西河危桥", "危桥拆除重建完成", "桥已通行")
CHINESE = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def internal_codes(settings: Settings) -> re.Pattern[str]:
    """What a person must never read on the desk: actors' ids, reporters' references, the
    codes of units and villages, people's ids (the reference data's and the test's own)."""
    ref = load(settings.reference_dir)
    codes = [*ref.all_units(), *ref.villages, "cadre-liu"]
    codes += [u.responsible_id for u in ref.units.values()]
    codes += [v.secretary_id for v in ref.villages.values()]
    words = "|".join(re.escape(c) for c in sorted(codes, key=len, reverse=True))
    return re.compile(rf"\b(?:service|person|system):|rpt_|\b(?:{words})\b")


async def assert_no_codes(page: Page, codes: re.Pattern[str]) -> None:
    text = await page.locator("body").inner_text()
    found = [m.group(0) for m in codes.finditer(text)]
    assert not found, f"internal codes on the page: {found}"


async def assert_all_english(page: Page) -> None:
    """No Chinese on the page but what people wrote and the switch back (中文)."""
    text = await page.locator("body").inner_text()
    for written in (*WRITTEN, "中文"):
        text = text.replace(written, "")
    assert not CHINESE.findall(text), f"Chinese left after the switch: {text}"


def chromium() -> str:
    """Debian's chromium (and a Chinese font, so the screenshots are readable); installed
    with apt-get when missing and we may, else the test is skipped."""
    found = shutil.which("chromium")
    if found and CHINESE_FONT.exists():
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        install = subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium", "fonts-wqy-zenhei"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if install.returncode == 0 and (found := shutil.which("chromium")):
            return found
        pytest.skip(f"no browser: `apt-get install chromium` failed: {install.stderr[-300:]}")
    if found:
        return found  # without the font: the test still runs, the screenshots show boxes
    pytest.skip("no browser: Debian's chromium is not installed and cannot be installed here")


class FrontDoorPolicy:
    """The front door's Content-Security-Policy on every answer, as Caddy sets it (here the
    desk is served without Caddy): a script the desk ran inline would be refused."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                policy = (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())
                message["headers"] = [*message.get("headers", []), policy]
            await send(message)

        await self.app(scope, receive, sending if scope["type"] == "http" else send)


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(
            FrontDoorPolicy(app), host="127.0.0.1", port=free_port(), log_level="warning"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await task


async def no_serious_violations(page: Page) -> None:
    """axe-core on the page as it is: nothing serious or critical (every page's tests
    use this one)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], serious


async def test_a_supervisor_finds_the_bridge_reads_its_timeline_and_exports_the_list(
    settings: Settings,
) -> None:
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    bridge = new_id()
    base = reported(bridge)
    report = IssueReported(
        title="三岐村东西河危桥",
        description="东西河上的桥栏杆断了，桥面开裂",
        category="bridges",
        village="sanqi",
        source="visit",
    )
    first = envelope(report, bridge, actor="person:cadre-liu", service="intake")
    resolved = IssueResolved(
        unit="town_construction",
        summary="危桥拆除重建完成",
        resolved_by="王工 Wang",
        assignment_no=1,
        lookback_due=date(2026, 12, 10),
    )
    passed = IssueLookbackPassed(
        visitor="网格员 Zhou",
        notes="桥已通行",
        assignment_no=1,
        lookback_due=date(2026, 12, 10),
        within_window=True,
    )

    replied = IssueReporterReplied(
        reply_id="R-1",
        reporter_ref="rpt_01KBRIDGEREPORTER000000000",
        stage="resolved",
        channel="log",
        attempts=1,
        feedback_link=True,
    )

    def later(event: IssueResolved | IssueLookbackPassed | IssueReporterReplied, days: int):  # type: ignore[no-untyped-def]
        e = envelope(event, bridge, actor="service:followup", service="followup")
        return e.model_copy(update={"time": base.time + timedelta(days=days)})

    await publish(
        settings,
        first,
        assigned(bridge),
        later(resolved, 3),
        later(replied, 3),
        later(passed, 5),
        reported(),
        reported(),
        *(
            envelope(
                replace_title(report, title), new_id(), actor="person:cadre-liu", service="intake"
            )
            for title in (IMG_TITLE, SCRIPT_TITLE)
        ),
    )
    ARTIFACTS.mkdir(exist_ok=True)

    app = create_app(settings)
    async with serving(app) as url, async_playwright() as pw:
        import httpx

        sessions = app.state.runtime.sessions
        await enrol(sessions, {**PEOPLE, ZHAO.name: ZHAO})
        for person in (ZHAO, PEOPLE["construction"], PEOPLE["line"], PEOPLE["reporter"]):
            await give_password(sessions, person, PASSWORD)
        async with httpx.AsyncClient(base_url=url, headers=AS["supervisor"]) as client:
            await eventually(
                lambda: client.get("/api/v1/issues", params={"status": "closed"}),
                lambda r: r.json()["total"] == 1,
            )
            await eventually(lambda: client.get("/api/v1/issues"), lambda r: r.json()["total"] == 5)
        browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
        errors: list[str] = []
        try:
            page = await browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: errors.append(str(error)))
            refused: list[str] = []  # what the Content-Security-Policy blocked
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            await page.goto(url + "/")
            assert await page.title() == "民情 · 台账"

            # Not logged in: the form, and nothing of the desk.
            await expect(page.locator("#login")).to_be_visible()
            await expect(page.locator("main")).to_be_hidden()
            await expect(page.locator("nav")).to_be_hidden()
            await page.screenshot(path=str(ARTIFACTS / "desk-login.png"))
            await page.fill("#login-name", "zhao.min")
            await page.fill("#login-password", "not-the-password")
            await page.click("#login-button")
            await expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")
            await expect(page.locator("main")).to_be_hidden()
            await log_in(page, "zhao.min")
            await expect(page.locator("#who-name")).to_have_text("赵敏")  # the Chinese part
            await expect(page.locator("#who-roles")).to_have_text("督查员@全镇")
            await expect(page.locator("#login")).to_be_hidden()

            # A stored script in a title is shown as text: no element made of it, nothing run.
            rows = page.locator("#matters tbody tr")
            await expect(rows).to_have_count(5)
            for title in (IMG_TITLE, SCRIPT_TITLE):
                await expect(page.locator("#matters td", has_text=title)).to_have_count(1)
            assert await page.locator("#matters img, #matters script").count() == 0
            await page.locator("#matters td", has_text=IMG_TITLE).click()
            await expect(page.locator("#t-title")).to_have_text(IMG_TITLE)
            assert await page.locator("#timeline img").count() == 0
            await page.click("#close")
            assert await page.evaluate("window.__xss") is None

            await page.fill("#q", "东西河")
            await expect(page.locator("#matters tbody tr")).to_have_count(1)
            row = page.locator(f"tr[data-issue='{bridge}']")
            await row.click()
            timeline = page.locator("#t-events")
            await timeline.locator("li[data-type='minqing.issue.lookback_passed']").wait_for()
            text = await timeline.inner_text()
            assert "办理人 王工：" in text  # who resolved it (a Chinese sentence, Chinese names)
            assert "回头看通过，网格员：" in text  # who looked back
            assert "已就办结答复反映人（记入答复日志）" in text  # whom it answered, in words
            assert "系统（跟踪督办）" in text and "工作人员" in text  # who did each step
            codes = internal_codes(settings)
            await assert_no_codes(page, codes)
            await page.screenshot(path=str(ARTIFACTS / "desk-timeline.png"), full_page=True)
            await no_serious_violations(page)

            async with page.expect_download() as download:
                await page.click("#close")
                await page.click("#export-xlsx")
            saved = await (await download.value).path()
            content = await asyncio.to_thread(Path(saved).read_bytes)
            assert content[:2] == b"PK"  # a zip: an XLSX workbook

            # The statistics in Chinese: people and units by name, the trends beside the bars.
            await page.click("button[data-tab='stats']")
            await expect(page.locator("#trends")).to_be_visible()
            await expect(page.locator(".chart h3", has_text="按责任人")).to_be_visible()
            await expect(page.locator("#charts")).to_contain_text("Xu Haijun")  # not xuma-secretary
            await assert_no_codes(page, codes)
            await page.screenshot(path=str(ARTIFACTS / "desk-statistics-zh.png"), full_page=True)
            await no_serious_violations(page)

            await page.click("button[data-tab='lookbacks']")
            await expect(page.locator("#lookback-table")).to_be_visible()
            # The timeline open when the language switches: it is redrawn, sentences and all.
            await page.click("button[data-tab='list']")
            await row.click()
            await expect(page.locator("#timeline")).to_be_visible()
            await page.click("#lang")
            await page.wait_for_selector("body[data-drawn=en]")
            assert await page.locator("h1").inner_text() == "Minqing · Matters"
            await expect(timeline).to_contain_text("by Wang")
            await expect(timeline).to_contain_text("the system (follow-up)")
            await expect(timeline).to_contain_text("The reporter answered about its resolution")
            await assert_all_english(page)
            await assert_no_codes(page, codes)
            await page.screenshot(path=str(ARTIFACTS / "desk-timeline-en.png"), full_page=True)
            await keep(page, "desk-timeline-en")
            await page.click("#close")
            await page.click("button[data-tab='overdue']")
            await assert_all_english(page)
            await page.click("button[data-tab='stats']")
            await page.locator(".card[data-figure='closed_loop'] b").wait_for()
            assert await page.locator(".card[data-figure='closed_loop'] b").inner_text() == "1"
            await expect(
                page.locator(".chart h3", has_text="By responsible person")
            ).to_be_visible()
            await expect(page.locator("#trends h3")).to_have_text("Week by week")
            await expect(page.locator("#trends .direction")).to_contain_text("Overdue")
            assert await page.locator("#trends g[data-week]").count() == 12
            await assert_all_english(page)
            await assert_no_codes(page, codes)
            await page.screenshot(path=str(ARTIFACTS / "desk-statistics.png"), full_page=True)
            await keep(page, "desk-statistics")
            # The choice is remembered: the page loaded again is in English.
            await page.reload()
            await page.wait_for_selector("body[data-ready=true]")
            assert await page.locator("h1").inner_text() == "Minqing · Matters"
            await expect(page.locator("#who-name")).to_have_text("Zhao Min")
            await expect(page.locator(f"tr[data-issue='{bridge}']")).to_contain_text(
                "Sanqi Village"
            )

            # As it stood the day after the report: not yet resolved, no loop closed.
            await page.click("button[data-tab='list']")
            await page.fill("#as-of", "2026-11-28")
            await expect(page.locator(f"tr[data-issue='{bridge}']")).to_contain_text("Assigned")
            await page.click("button[data-tab='stats']")
            closed = page.locator(".card[data-figure='closed_loop'] b")
            await expect(closed).to_have_text("0")
            # The trends end with the week of that day: the five matters reported that Friday.
            week = page.locator("#trends g[data-week='2026-11-23'] title")
            await expect(week).to_have_text(re.compile(r"Received 5, Closed 0"))

            # The session ends (its cookie gone): the next call brings the form back over
            # the page, which keeps its tab, filters and rows; the same person carries on.
            await page.context.clear_cookies()
            await page.click("button[data-tab='list']")
            await page.fill("#q", "东西河")
            await expect(page.locator("#login")).to_be_visible()
            await expect(page.locator("#login-note")).to_contain_text("session has ended")
            assert await page.input_value("#login-name") == "zhao.min"
            assert await rows.count() > 0  # still there, behind the form
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-button")
            await page.wait_for_selector("body[data-ready=true]")
            assert await page.input_value("#q") == "东西河"
            assert await page.input_value("#as-of") == "2026-11-28"
            await expect(rows).to_have_count(1)
            await expect(page.locator(f"tr[data-issue='{bridge}']")).to_contain_text("Assigned")

            # Logged out: the form is back, the list is gone and out of reach.
            await page.click("#logout")
            await expect(page.locator("#login")).to_be_visible()
            await expect(page.locator("main")).to_be_hidden()
            await expect(page.locator("#who")).to_be_hidden()
            assert await rows.count() == 0
            status = "fetch('/api/v1/issues', {credentials: 'same-origin'}).then(r => r.status)"
            assert await page.evaluate(status) == 401

            # Other roles see only what the matrix lets them call.
            await log_in(page, "construction")  # a unit's staff: no statistics
            await expect(page.locator("#who-roles")).to_contain_text("unit staff@")
            await expect(page.locator("button[data-tab='list']")).to_be_visible()
            await expect(page.locator("button[data-tab='stats']")).to_be_hidden()
            await expect(page.locator("#export-xlsx")).to_be_visible()
            await page.click("#logout")
            await log_in(page, "line")  # line staff: the list, no exports, no statistics
            await expect(page.locator("button[data-tab='lookbacks']")).to_be_visible()
            await expect(page.locator("button[data-tab='stats']")).to_be_hidden()
            await expect(page.locator("#export-csv")).to_be_hidden()
            await expect(page.locator("#export-xlsx")).to_be_hidden()
            await page.click("#logout")
            await log_in(page, "reporter")  # records matters elsewhere: nothing here
            await expect(page.locator("#nothing")).to_be_visible()
            await expect(page.locator("nav button:visible")).to_have_count(0)
            await expect(page.locator("#list")).to_be_hidden()
            await page.screenshot(path=str(ARTIFACTS / "desk-nothing-for-a-reporter.png"))
            await page.click("#logout")

            # Guessing: after the name's allowance of attempts, the form says to wait.
            for _ in range(parse_limit(settings.login_attempts_per_name).amount + 1):
                await page.fill("#login-name", "nobody")
                await page.fill("#login-password", "guess-guess-guess")
                await page.click("#login-button")
                await expect(page.locator("#login-button")).to_be_enabled()
            await expect(page.locator("#login-error")).to_contain_text("Too many login attempts")
            await expect(page.locator("#login-error")).to_contain_text("seconds")
            assert errors == []  # no script error on any tab
            assert refused == []  # the desk itself needs nothing the front door forbids
        finally:
            await browser.close()


async def test_on_a_phone_the_desk_names_people_and_switches_wholly_to_english(
    settings: Settings,
) -> None:
    """At 360 px: the list, a matter's timeline and the statistics with the trends, in
    Chinese then in English, no internal code anywhere, nothing wider than the screen."""
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    bridge = new_id()
    report = IssueReported(
        title="三岐村东西河危桥",
        description="东西河上的桥栏杆断了",
        category="bridges",
        village="sanqi",
        source="visit",
        reporter_ref="rpt_01KPHONEREPORTER0000000000",
    )
    resolved = IssueResolved(
        unit="town_construction",
        summary="危桥拆除重建完成",
        resolved_by="person:zhao.min",
        assignment_no=1,
        lookback_due=date(2026, 12, 10),
    )
    routed = IssueAssigned(
        unit="town_construction",
        responsible_person_id="construction-head",
        responsible_person_name="刘志强 Liu Zhiqiang",
        deadline=date(2026, 12, 4),
        working_days=5,
        assignment_no=1,
        reason="routed on report",
        category="bridges",
        village="sanqi",
        calendar="weekdays",
    )
    replied = IssueReporterReplied(
        reply_id="R-1",
        reporter_ref="rpt_01KPHONEREPORTER0000000000",
        stage="resolved",
        channel="log",
        attempts=1,
        feedback_link=True,
    )
    await publish(
        settings,
        envelope(report, bridge, actor="person:cadre-liu", service="intake"),
        envelope(routed, bridge, actor="service:assignment", service="assignment"),
        envelope(resolved, bridge, actor="person:zhao.min", service="followup"),
        envelope(replied, bridge, actor="service:intake", service="intake"),
        reported(village="sanqi"),
    )
    ARTIFACTS.mkdir(exist_ok=True)
    codes = internal_codes(settings)
    app = create_app(settings)
    async with serving(app) as url, async_playwright() as pw:
        import httpx

        sessions = app.state.runtime.sessions
        await enrol(sessions, {**PEOPLE, ZHAO.name: ZHAO})
        await give_password(sessions, ZHAO, PASSWORD)
        async with httpx.AsyncClient(base_url=url, headers=AS["supervisor"]) as client:
            await eventually(
                lambda: client.get(f"/api/v1/issues/{bridge}/history"),
                lambda r: r.status_code == 200 and len(r.json()["events"]) == 4,
            )
            await eventually(lambda: client.get("/api/v1/issues"), lambda r: r.json()["total"] == 2)
        browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
        errors: list[str] = []
        try:
            page = await browser.new_page(
                locale="zh-CN", viewport={"width": 360, "height": 740}, is_mobile=True
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(url + "/")
            await log_in(page, "zhao.min")
            await expect(page.locator("#who-name")).to_have_text("赵敏")
            rows = page.locator("#matters tbody tr")
            await expect(rows).to_have_count(2)
            bridge_row = page.locator(f"tr[data-issue='{bridge}']")
            await expect(bridge_row).to_contain_text("三岐村")
            await expect(bridge_row).to_contain_text("建设管理所")
            await assert_no_codes(page, codes)
            await assert_fits(page, 360)
            await page.screenshot(path=str(ARTIFACTS / "desk-phone-list.png"), full_page=True)
            await no_serious_violations(page)

            await bridge_row.click()
            timeline = page.locator("#t-events")
            await expect(timeline.locator("li")).to_have_count(4)
            await expect(timeline).to_contain_text("办理人 赵敏：")
            await expect(timeline).to_contain_text("已就办结答复反映人（记入答复日志）")
            await expect(timeline).to_contain_text("系统（派单）")
            await assert_no_codes(page, codes)
            await page.screenshot(path=str(ARTIFACTS / "desk-phone-timeline.png"), full_page=True)
            await page.click("#lang")
            await page.wait_for_selector("body[data-drawn=en]")
            await expect(timeline).to_contain_text("by Zhao Min")
            await expect(timeline).to_contain_text("the system (assignment)")
            await expect(page.locator("#close")).to_have_attribute("aria-label", "Close")
            await assert_all_english(page)
            await assert_no_codes(page, codes)
            await page.screenshot(
                path=str(ARTIFACTS / "desk-phone-timeline-en.png"), full_page=True
            )
            await page.click("#close")

            await page.click("button[data-tab='stats']")
            await expect(page.locator("#trends h3")).to_have_text("Week by week")
            await expect(page.locator("#trends svg")).to_be_visible()
            await expect(page.locator("#charts")).to_contain_text("Liu Zhiqiang")
            await expect(page.locator("#charts")).to_contain_text("Sanqi Village")
            await assert_all_english(page)
            await assert_no_codes(page, codes)
            await assert_fits(page, 360)
            await page.screenshot(
                path=str(ARTIFACTS / "desk-phone-statistics-en.png"), full_page=True
            )
            await page.click("#lang")  # and back: the whole page again in Chinese
            await page.wait_for_selector("body[data-drawn=zh]")
            await expect(page.locator("#trends h3")).to_have_text("每周趋势")
            await expect(page.locator("#charts")).to_contain_text("刘志强")
            await expect(page.locator("nav button[data-tab='stats']")).to_have_text("统计")
            await assert_no_codes(page, codes)
            await page.screenshot(path=str(ARTIFACTS / "desk-phone-statistics.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()


async def assert_fits(page: Page, width: int) -> None:
    """Nothing makes the page wider than the screen (a wide table scrolls on its own)."""
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll} px wide on a {width} px screen"


def replace_title(report: IssueReported, title: str) -> IssueReported:
    return report.model_copy(update={"title": title, "description": "a hostile title"})


async def log_in(page: Page, name: str) -> None:
    """Log in at the form as ``name`` and wait for the desk."""
    await page.fill("#login-name", name)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-button")
    await page.wait_for_selector("body[data-ready=true]")
