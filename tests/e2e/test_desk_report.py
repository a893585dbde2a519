"""The periodic report on the desk, in a real browser (Debian's chromium, driven by
Playwright) through the front door (a real Caddy, its Content-Security-Policy on every
answer), intake and the projection running with one clock the test sets: a supervisor
opens the report view (月报), is told in Chinese when the range is missing a day, asks for
November 2026, and reads the town's figures and the villages' ranking as the JSON of
``GET /api/v1/report`` holds them, with the households visited per village in that month
(intake's ``GET /api/v1/visits/summary``); the links go to the printable page and the XLSX
workbook; a quarter and a range answer too; the English switch turns the view. On a 360 px
phone nothing is wider than the screen. Screenshots in test-artifacts/."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from minqing.services.intake.app import create_app as create_intake
from minqing.services.projection.app import create_app as create_projection
from minqing.shared.contract.events import IssueResolved
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.e2e.test_desk import ARTIFACTS, assert_fits, chromium
from tests.e2e.test_resident_pages import Watched, no_serious_violations, serving
from tests.support.clock import SetClock
from tests.support.events import FRIDAY_MORNING, assigned, envelope, publish, reported
from tests.support.frontdoor import front_door
from tests.support.harness import eventually
from tests.support.identity import AS, PEOPLE, TOWN, enrol, give_password
from tests.support.tour import keep

pytestmark = pytest.mark.e2e

PASSWORD = "monthly-report-2026"
ZHAO = Principal(Kind.PERSON, "zhao.min", "赵敏 Zhao Min", (Membership(TOWN, Role.SUPERVISOR),))
NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)  # 10:00 in Shihu, early December
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


async def test_a_supervisor_reads_the_monthly_report_and_the_visits_on_the_desk(
    settings: Settings, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    clock = SetClock(NOW)
    # November: three matters in Xuma, one in Sanqi; one of Xuma's resolved.
    road, lights = new_id(), new_id()
    resolved = IssueResolved(
        unit="town_construction",
        summary="路面已修复",
        resolved_by="王工 Wang",
        assignment_no=1,
        lookback_due=FRIDAY_MORNING.date() + timedelta(days=10),
    )
    done = envelope(resolved, road, actor="person:wang", service="followup")
    await publish(
        settings,
        reported(road),
        assigned(road),
        done.model_copy(update={"time": FRIDAY_MORNING + timedelta(days=1)}),
        reported(),
        reported(),
        reported(lights, category="street_lights", village="sanqi"),
        assigned(lights),
    )
    intake_port, projection_port = free_port(), free_port()
    upstreams: dict[Any, str] = {
        "intake": f"127.0.0.1:{intake_port}",
        "projection": f"127.0.0.1:{projection_port}",
        "assignment": "127.0.0.1:1",  # not needed by the desk
        "followup": "127.0.0.1:1",
    }
    with front_door(tmp_path, upstreams) as (door, _):
        url = door.url.rstrip("/")
        intake = create_intake(settings, clock=clock)
        projection = create_projection(settings, clock=clock)
        async with (
            serving(intake, intake_port),
            serving(projection, projection_port),
            async_playwright() as pw,
        ):
            sessions = projection.state.runtime.sessions
            await enrol(sessions, {**PEOPLE, ZHAO.name: ZHAO})
            await give_password(sessions, ZHAO, PASSWORD)
            async with httpx.AsyncClient(base_url=url) as client:
                # Door-to-door visits that found nothing: 7 households in Sanqi, 3 in
                # Qizhuang in November; 5 in Sanqi in December (not this report's).
                for village, households, day in (
                    ("sanqi", 4, 3),
                    ("sanqi", 3, 20),
                    ("qizhuang", 3, 25),
                ):
                    answer = await client.post(
                        "/api/v1/visits",
                        json={
                            "village": village,
                            "households": households,
                            "visited_at": f"2026-11-{day:02d}T10:00:00+08:00",
                        },
                        headers={**AS["reporter"], "Idempotency-Key": new_id()},
                    )
                    assert answer.status_code == 201, answer.text
                answer = await client.post(
                    "/api/v1/visits",
                    json={
                        "village": "sanqi",
                        "households": 5,
                        "visited_at": "2026-12-01T09:00:00+08:00",
                    },
                    headers={**AS["reporter"], "Idempotency-Key": new_id()},
                )
                assert answer.status_code == 201, answer.text

                async def november() -> dict[str, Any]:
                    answer = await client.get(
                        "/api/v1/report", params={"period": "2026-11"}, headers=AS["supervisor"]
                    )
                    assert answer.status_code == 200, answer.text
                    found: dict[str, Any] = answer.json()
                    return found

                report = await eventually(
                    november,
                    lambda r: r["town"]["matters"] == 4 and r["town"]["response_rate"] is not None,
                )
                # the resolution seen too
                report = await eventually(november, lambda r: r["town"]["resolution_rate"])
                summary = (
                    await client.get(
                        "/api/v1/visits/summary",
                        params={"from": "2026-11-01", "to": "2026-11-30"},
                        headers=AS["supervisor"],
                    )
                ).json()
                assert summary["households"] == 10

            browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
            try:
                context = await browser.new_context(locale="zh-CN", viewport=DESKTOP)
                watched = Watched(await context.new_page())
                page = watched.page
                await page.goto(url + "/")
                await page.fill("#login-name", "zhao.min")
                await page.fill("#login-password", PASSWORD)
                await page.click("#login-button")
                await page.wait_for_selector("body[data-ready=true]")
                tab = page.locator("button[data-tab=report]")
                await expect(tab).to_have_text("月报")
                await tab.click()
                await expect(page.locator("#report")).to_be_visible()

                # A range missing a day: said in Chinese, nothing asked.
                await page.select_option("#r-kind", "range")
                await page.fill("#r-from", "2026-11-01")
                await page.click("#report-form button[type=submit]")
                await expect(page.locator("#r-error")).to_have_text("请填写起止日期。")

                # November 2026.
                await page.select_option("#r-kind", "month")
                await page.fill("#r-month", "2026-11")
                await page.click("#report-form button[type=submit]")
                await page.wait_for_selector("body[data-report='2026-11']")
                await expect(page.locator("#r-error")).to_be_hidden()
                await expect(page.locator("#r-title")).to_have_text("民情办理通报 2026-11")
                await expect(page.locator("#r-meta")).to_contain_text("2026-11-01 至 2026-11-30")
                town = report["town"]
                for key in ("matters", "closed_loop", "overdue", "escalated"):
                    figure = page.locator(f"[data-figure={key}] b")
                    await expect(figure).to_have_text(str(town[key]))
                for key in ("response_rate", "resolution_rate", "on_time_rate"):
                    figure = page.locator(f"[data-figure={key}] b")
                    await expect(figure).to_have_text(rate(town[key]))
                await expect(page.locator("[data-figure=matters]")).to_contain_text("受理")
                # the villages in the JSON's order, each with its rank and figures
                rows = page.locator("#r-villages tbody tr")
                await expect(rows).to_have_count(len(report["villages"]))
                codes = await rows.evaluate_all("(rows) => rows.map((r) => r.dataset.code)")
                assert codes == [v["code"] for v in report["villages"]]
                xuma = next(v for v in report["villages"] if v["code"] == "xuma")
                row = page.locator("#r-villages tr[data-code=xuma]")
                await expect(row.locator("td").nth(1)).to_have_text("徐马村")
                await expect(row.locator("[data-col=matters] .v")).to_have_text(
                    str(xuma["figures"]["matters"])
                )
                change = xuma["change"]["matters"]
                await expect(row.locator("[data-col=matters] .change")).to_have_text(
                    "" if change is None else f" ({'+' if change > 0 else ''}{change})"
                )
                await expect(row.locator("td").first).to_have_text(
                    str(xuma["rank"]) if xuma["rank"] is not None else "—"
                )
                await expect(page.locator("#r-units tbody tr")).to_have_count(len(report["units"]))
                # households visited per village in November, from intake
                visited = page.locator("#r-visits tr[data-village=sanqi] [data-col=households]")
                await expect(visited).to_have_text("7")
                await expect(
                    page.locator("#r-visits tr[data-village=qizhuang] [data-col=households]")
                ).to_have_text("3")
                await expect(page.locator("#r-visits-total")).to_contain_text("本期共走访 10 户")
                # the printable page and the workbook, for the same period
                printable = await page.get_attribute("#r-html", "href")
                workbook = await page.get_attribute("#r-xlsx", "href")
                assert printable == "/api/v1/report?period=2026-11&format=html"
                assert workbook == "/api/v1/report?period=2026-11&format=xlsx"
                shown = await context.request.get(url + printable)
                assert shown.status == 200 and "民情办理通报 2026-11" in await shown.text()
                async with page.expect_download() as download:
                    await page.click("#r-xlsx")
                saved = await (await download.value).path()
                content = await asyncio.to_thread(Path(saved).read_bytes)
                assert content[:2] == b"PK"  # a zip: an XLSX workbook
                await no_serious_violations(page)
                await page.screenshot(path=str(ARTIFACTS / "desk-report.png"), full_page=True)
                await keep(page, "desk-report")

                # A quarter, and a range of days.
                await page.select_option("#r-kind", "quarter")
                await page.fill("#r-year", "2026")
                await page.select_option("#r-q", "4")
                await page.click("#report-form button[type=submit]")
                await page.wait_for_selector("body[data-report='2026-Q4']")
                await expect(page.locator("[data-figure=matters] b")).to_have_text("4")
                await page.select_option("#r-kind", "range")
                await page.fill("#r-from", "2026-11-27")
                await page.fill("#r-to", "2026-12-05")
                await page.click("#report-form button[type=submit]")
                await page.wait_for_selector("body[data-report='2026-11-27..2026-12-05']")
                await expect(page.locator("#r-visits-total")).to_contain_text("本期共走访 5 户")

                # In English.
                await page.click("#lang")
                await page.wait_for_selector("body[data-drawn=en]")
                await expect(tab).to_have_text("Report")
                await expect(page.locator("[data-figure=matters]")).to_contain_text("Received")
                await expect(page.locator("#r-villages")).to_contain_text("Score")
                await expect(page.locator("#r-visits")).to_contain_text("Households visited")
                sanqi = page.locator("#r-visits tr[data-village=sanqi] td").first
                await expect(sanqi).to_have_text("Sanqi Village")
                await page.screenshot(path=str(ARTIFACTS / "desk-report-en.png"), full_page=True)

                # On a phone.
                await page.set_viewport_size(PHONE)
                await page.click("#lang")
                await page.wait_for_selector("body[data-drawn=zh]")
                await assert_fits(page, PHONE["width"])
                await page.screenshot(path=str(ARTIFACTS / "desk-report-phone.png"), full_page=True)
                await context.close()
            finally:
                await browser.close()
        assert watched.errors == []  # no script error
        assert watched.refused == []  # nothing the front door's policy forbids
