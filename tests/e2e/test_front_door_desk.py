"""The desk through the front door in a real browser (Debian's chromium): it loads and works
under the Content-Security-Policy (no violation while a supervisor finds a matter, opens its
timeline and its printable trail), and a script injected into the page as inline code does
not run there, while the same injection runs on the projection's own port (no CSP): the
test would see it if the policy let inline script through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from minqing.services.projection.app import create_app
from minqing.shared.contract.events import IssueReported
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.e2e.test_desk import chromium
from tests.support.events import assigned, envelope, publish
from tests.support.frontdoor import front_door, serving
from tests.support.harness import eventually
from tests.support.identity import DESK, enrol

pytestmark = pytest.mark.e2e

# Inline script, as a stored title would carry it if it were not escaped: an element with
# code, and an inline event handler. Neither may run under script-src 'self'.
INJECT = """() => {
    const script = document.createElement("script");
    script.textContent = "window.injected = 'inline script ran'";
    document.body.appendChild(script);
    const img = document.createElement("img");
    img.setAttribute("onerror", "window.handler = 'inline handler ran'");
    img.src = "/nowhere.png";
    document.body.appendChild(img);
}"""


async def test_the_desk_works_through_the_front_door_and_its_csp_blocks_inline_script(
    settings: Settings, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    issue_id = new_id()
    title = "石湖村<script>alert(1)</script>路灯不亮"
    report = IssueReported(
        title=title,
        description="六盏灯不亮",
        category="street_lights",
        village="shihu",
        source="visit",
    )
    await publish(
        settings,
        envelope(report, issue_id, actor="person:cadre-liu", service="intake"),
        assigned(issue_id),
    )

    projection = create_app(settings)
    async with serving(projection, lifespan="on") as port, async_playwright() as pw:
        await enrol(projection.state.runtime.sessions)  # the desk's credentials (DESK)
        direct = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=direct, headers=DESK) as client:
            await eventually(lambda: client.get("/api/v1/issues"), lambda r: r.json()["total"] == 1)
        elsewhere = "127.0.0.1:1"  # the other services are not needed by the desk's pages
        upstreams: dict[Any, str] = {
            "intake": elsewhere,
            "assignment": elsewhere,
            "followup": elsewhere,
            "projection": f"127.0.0.1:{port}",
        }
        with front_door(tmp_path, upstreams) as (door, _):
            browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
            try:
                context = await browser.new_context(
                    locale="zh-CN", viewport={"width": 1280, "height": 900}, extra_http_headers=DESK
                )
                page = await context.new_page()
                errors: list[str] = []
                violations: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.on(
                    "console",
                    lambda m: violations.append(m.text) if "Content Security" in m.text else None,
                )
                await page.goto(door.url)
                await page.wait_for_selector("body[data-ready=true]")
                assert await page.title() == "民情 · 台账"
                row = page.locator(f"tr[data-issue='{issue_id}']")
                await expect(row).to_contain_text("<script>alert(1)</script>")  # as text
                await row.click()
                await page.locator("#t-events li").first.wait_for()
                href = await page.get_attribute("#t-print", "href")
                assert href is not None
                trail = await context.new_page()
                trail.on(
                    "console",
                    lambda m: violations.append(m.text) if "Content Security" in m.text else None,
                )
                await trail.goto(door.url.rstrip("/") + href)
                assert await trail.locator("h1").inner_text() == title  # escaped, shown
                margin = await trail.evaluate("getComputedStyle(document.body).marginTop")
                assert margin != "8px"  # print.css applied (2em), not the browser's default
                await page.click("#close")
                await page.click("button[data-tab='stats']")
                await page.locator(".card[data-figure='closed_loop'] b").wait_for()
                assert errors == [] and violations == [], (errors, violations)

                # An injected inline script and inline handler do not run behind the door...
                await page.evaluate(
                    "() => document.addEventListener('securitypolicyviolation',"
                    " e => (window.blocked = (window.blocked || []).concat(e.violatedDirective)))"
                )
                await page.evaluate(INJECT)
                await page.wait_for_timeout(300)
                assert await page.evaluate("window.injected") is None
                assert await page.evaluate("window.handler") is None
                blocked = await page.evaluate("window.blocked")
                assert blocked and all(d.startswith("script-src") for d in blocked), blocked

                # ...and do on the projection's own port, where no front door sets the CSP.
                bare = await context.new_page()
                await bare.goto(direct + "/")
                await bare.wait_for_selector("body[data-ready=true]")
                await bare.evaluate(INJECT)
                await bare.wait_for_timeout(300)
                assert await bare.evaluate("window.injected") == "inline script ran"
                assert await bare.evaluate("window.handler") == "inline handler ran"
            finally:
                await browser.close()
