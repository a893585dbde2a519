"""The supervisors' desk in a real browser (Debian's chromium, driven by Playwright): find
the Sanqi Village bridge by typing part of its name, open its timeline, see who resolved it
and who looked back, export the list, switch to English, read the statistics. A screenshot
is kept in test-artifacts/."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import uvicorn

from minqing.services.projection.app import create_app
from minqing.shared.contract.events import IssueLookbackPassed, IssueReported, IssueResolved
from minqing.shared.domain.ids import new_id
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.support.events import assigned, envelope, publish, reported
from tests.support.harness import eventually
from tests.support.paths import ROOT

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts"


CHINESE_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


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


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=free_port(), log_level="warning"
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
    first = envelope(report, bridge, actor="cadre-liu", service="intake")
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

    def later(event: IssueResolved | IssueLookbackPassed, days: int):  # type: ignore[no-untyped-def]
        e = envelope(event, bridge, actor="followup", service="followup")
        return e.model_copy(update={"time": base.time + timedelta(days=days)})

    await publish(
        settings,
        first,
        assigned(bridge),
        later(resolved, 3),
        later(passed, 5),
        reported(),
        reported(),
    )
    ARTIFACTS.mkdir(exist_ok=True)

    async with serving(settings) as url, async_playwright() as pw:
        import httpx

        async with httpx.AsyncClient(base_url=url) as client:
            await eventually(
                lambda: client.get("/api/v1/issues", params={"status": "closed"}),
                lambda r: r.json()["total"] == 1,
            )
        browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
        errors: list[str] = []
        try:
            page = await browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(url + "/")
            await page.wait_for_selector("body[data-ready=true]")
            assert await page.title() == "民情 · 台账"

            await page.fill("#q", "东西河")
            await expect(page.locator("#matters tbody tr")).to_have_count(1)
            row = page.locator(f"tr[data-issue='{bridge}']")
            await row.click()
            timeline = page.locator("#t-events")
            await timeline.locator("li[data-type='minqing.issue.lookback_passed']").wait_for()
            text = await timeline.inner_text()
            assert "办理人 王工 Wang" in text  # who resolved it
            assert "回头看通过，网格员 Zhou" in text  # who looked back
            await page.screenshot(path=str(ARTIFACTS / "desk-timeline.png"), full_page=True)

            async with page.expect_download() as download:
                await page.click("#close")
                await page.click("#export-xlsx")
            saved = await (await download.value).path()
            content = await asyncio.to_thread(Path(saved).read_bytes)
            assert content[:2] == b"PK"  # a zip: an XLSX workbook

            await page.click("button[data-tab='lookbacks']")
            await expect(page.locator("#lookback-table")).to_be_visible()
            await page.click("#lang")
            assert await page.locator("h1").inner_text() == "Minqing · Matters"
            await page.click("button[data-tab='stats']")
            await page.locator(".card[data-figure='closed_loop'] b").wait_for()
            assert await page.locator(".card[data-figure='closed_loop'] b").inner_text() == "1"
            await expect(
                page.locator(".chart h3", has_text="By responsible person")
            ).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "desk-statistics.png"), full_page=True)

            # As it stood the day after the report: not yet resolved, no loop closed.
            await page.click("button[data-tab='list']")
            await page.fill("#as-of", "2026-11-28")
            await expect(page.locator(f"tr[data-issue='{bridge}']")).to_contain_text("Assigned")
            await page.click("button[data-tab='stats']")
            closed = page.locator(".card[data-figure='closed_loop'] b")
            await expect(closed).to_have_text("0")
            assert errors == []  # no script error on any tab
        finally:
            await browser.close()
