"""The unit's workbench in a real browser (Debian's chromium, driven by Playwright) through
the front door (a real Caddy running the Caddyfile generated from the services as built now,
its Content-Security-Policy on every answer), the four services running as processes: a
village party secretary logs in on a 360 px phone, finds his branch's two new matters, is
told in Chinese which field is empty, sends one back with a reason, accepts the other (签收,
on its trail), reveals its reporter (the reveal on the trail) and resolves it with a photo
(taken with the phone's camera input: the first upload fails on the way and is said to, the
summary stays, "try again" uploads it; the matter's view then shows it, attached at the
resolution); line staff, on a desktop, find it among their look-backs due, are told the
notes are missing, record it failed with a photo of their own; the matter is back on the
secretary's workbench, to do again, with both photos; once intake's retention rule has
removed their bytes, the matter says so in place of each. The English switch
turns the page; no internal code is shown; axe-core finds nothing serious. Screenshots in
test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from minqing.services.intake.photos.handlers import Pruned
from minqing.services.intake.photos.prune import prune_on
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.persistence.db import make_sessions
from minqing.shared.service.settings import Settings
from tests.e2e.test_desk import ARTIFACTS, assert_no_codes, chromium, internal_codes
from tests.e2e.test_resident_pages import Watched, no_serious_violations, noisy_png
from tests.support.frontdoor import front_door
from tests.support.harness import isolated_settings
from tests.support.identity import DESK, PEOPLE, enrol, give_password
from tests.support.processes import ServiceProcess, poll, running_services
from tests.support.tour import keep

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Route

pytestmark = pytest.mark.e2e

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
PASSWORD = "sanqi-branch-2026"
SECRETARY = Principal(
    Kind.PERSON,
    "wang.jianguo",
    "王建国 Wang Jianguo",
    (Membership("sanqi_branch", Role.UNIT_STAFF),),
)
VISITOR = Principal(
    Kind.PERSON, "zhou.min", "周敏 Zhou Min", (Membership("grid_center", Role.LINE_STAFF),)
)
NOT_OURS = "村西头水塘漏水"  # the matter sent back (the water station's, says the secretary)
TO_FIX = "村口垃圾堆放无人清理"  # the matter resolved, failed at the look-back, done again


@pytest.fixture
def town(nats_url: str, database_url: str, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    with running_services(isolated_settings(nats_url, database_url), tmp_path) as running:
        yield running


def report(intake: str, title: str) -> str:
    body = {
        "title": title,
        "description": f"{title}，请尽快处理",
        "category": "other",  # the reporting village's party branch handles it
        "village": "sanqi",
        "source": "grid_center",
        "reporter": {"name": "张秀英", "phone": "13812345678"},
        "location": {"address": "三岐村村口"},
    }
    response = httpx.post(f"{intake}/api/v1/reports", json=body, headers=DESK)
    assert response.status_code == 201, response.text
    return str(response.json()["issue_id"])


def status_of(projection: str, issue_id: str) -> dict[str, Any]:
    response = httpx.get(f"{projection}/api/v1/issues/{issue_id}", headers=DESK)
    return dict(response.json()) if response.status_code == 200 else {}


def prepare(town: dict[str, ServiceProcess]) -> tuple[str, str]:
    """The visitor registered as line staff of the grid center (who looks back at the
    village branches' work), and two matters reported in Sanqi, assigned to its branch."""
    registered = httpx.put(
        f"{town['followup'].url}/api/v1/line-staff/{VISITOR.id}",
        json={"name": VISITOR.display_name, "unit": "grid_center", "reason": "回访人员"},
        headers=DESK,
    )
    assert registered.status_code == 200, registered.text
    found = report(town["intake"].url, NOT_OURS), report(town["intake"].url, TO_FIX)
    for issue_id in found:
        poll(
            lambda i=issue_id: status_of(town["projection"].url, i),
            lambda s: s.get("unit") == "sanqi_branch",
        )
    return found


async def people(settings_url: str) -> None:
    """The secretary, the line staff member and a supervisor log in with a password."""
    engine = create_async_engine(settings_url, poolclass=NullPool)
    try:
        sessions = make_sessions(engine)
        await enrol(sessions, {"wang.jianguo": SECRETARY, "zhou.min": VISITOR})
        for person in (SECRETARY, VISITOR, PEOPLE["supervisor"]):
            await give_password(sessions, person, PASSWORD)
    finally:
        await engine.dispose()


async def prune(database_url: str, nats_url: str, at: datetime) -> Pruned:
    """Intake's retention rule, run by hand (as ``minqing photos prune`` does) at ``at``."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        return await prune_on(engine, isolated_settings(nats_url, database_url), lambda: at)
    finally:
        await engine.dispose()


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"workbench-{name}.png"), full_page=True)
    await keep(page, f"workbench-{name}")


async def log_in(browser: Browser, url: str, viewport: dict[str, int], name: str) -> Watched:
    context = await browser.new_context(locale="zh-CN", viewport=viewport)
    watched = Watched(await context.new_page())
    page = watched.page
    await page.goto(f"{url}/work")
    await page.wait_for_selector("body[data-drawn=login]")
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#login-error:text('请填写“用户名”。')")
    await page.fill("#login-name", name)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login button[type=submit]")
    return watched


async def fits(page: Page) -> None:
    """Nothing wider than the screen: no sideways scrolling on a phone."""
    wide = await page.evaluate("document.documentElement.scrollWidth")
    assert wide <= PHONE["width"], wide


def group(page: Page, key: str, title: str) -> Any:
    return page.locator(f"[data-group={key}] .item", has_text=title)


async def reload_until(page: Page, key: str, title: str) -> None:
    """The workbench as the projection catches up: reloaded until ``title`` is in ``key``."""

    async def found() -> bool:
        await page.reload()
        await page.wait_for_selector("body[data-drawn=unit]")
        return await group(page, key, title).count() == 1

    for _ in range(40):
        if await found():
            return
        await page.wait_for_timeout(500)
    raise AssertionError(f"{title} never showed under {key}")


async def test_a_secretary_sends_back_and_resolves_and_a_failed_look_back_brings_it_back(
    town: dict[str, ServiceProcess], nats_url: str, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    await people(database_url)
    projection = town["projection"].url
    _, to_fix = prepare(town)  # the first is sent back, the second resolved

    upstreams: dict[Any, str] = {name: f"127.0.0.1:{s.port}" for name, s in town.items()}
    codes = internal_codes(Settings())
    with front_door(tmp_path, upstreams) as (door, _):
        url = door.url.rstrip("/")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
            # --- the secretary, on a phone
            phone = await log_in(browser, url, PHONE, "wang.jianguo")
            page = phone.page
            await page.wait_for_selector("body[data-drawn=unit]")
            await expect(page.locator("#who")).to_contain_text("王建国")
            await expect(group(page, "new", NOT_OURS)).to_have_count(1)
            await expect(group(page, "new", TO_FIX)).to_have_count(1)
            await expect(group(page, "new", TO_FIX)).to_contain_text("工作日")
            await assert_no_codes(page, codes)
            await fits(page)
            await shot(page, "phone-list")

            await group(page, "new", NOT_OURS).click()
            await page.wait_for_selector("body[data-drawn='matter:assigned']")
            await expect(page.locator("#trail li").first).to_be_visible()
            await page.click("[data-card=send_back] summary")
            await page.click("[data-action=send_back] button[type=submit]")
            await expect(page.locator("[data-action=send_back] .error")).to_have_text(
                "请填写“退回理由”。"
            )
            await page.fill("#f-reason", "水塘属于水利站管理，不是村党支部的事")
            await shot(page, "phone-send-back")
            await page.click("[data-action=send_back] button[type=submit]")
            await expect(page.locator("#done")).to_have_text("已退回，等待镇里改派。")
            await expect(page.locator("#matter-head")).to_contain_text("水塘属于水利站管理")
            await page.click("#back")
            await page.wait_for_selector("body[data-drawn=unit]")
            await expect(group(page, "sent_back", NOT_OURS)).to_have_count(1)

            await group(page, "new", TO_FIX).click()
            await page.wait_for_selector("body[data-drawn='matter:assigned']")
            await page.click("[data-card=accept] summary")
            await page.click("[data-action=accept] button[type=submit]")
            await expect(page.locator("#done")).to_have_text("已签收，请按期办理。")
            await expect(page.locator("#matter-head")).to_contain_text("已签收")
            await expect(page.locator("#trail")).to_contain_text("三岐村党支部签收（王建国）")
            await expect(page.locator("[data-card=accept]")).to_have_count(0)
            await shot(page, "phone-accepted")
            await page.click("[data-card=contact] summary")
            await page.click("[data-action=contact] button[type=submit]")
            await expect(page.locator("[data-action=contact] .error")).to_have_text(
                "请填写“查看原因”。"
            )
            await page.fill("#f-contact-reason", "核实垃圾堆放的位置")
            await page.click("[data-action=contact] button[type=submit]")
            await expect(page.locator("[data-contacts] a[href='tel:13812345678']")).to_be_visible()
            await page.click("[data-card=resolve] summary")
            await page.click("[data-action=resolve] button[type=submit]")
            await expect(page.locator("[data-action=resolve] .error")).to_have_text(
                "请填写“办理结果”。"
            )
            await page.fill("#f-summary", "已组织清运，村口垃圾清理完毕")
            # A photo from the camera input; the first upload is lost on the way.
            resolve = page.locator("[data-action=resolve]")
            camera = resolve.locator("input[type=file]")
            assert await camera.get_attribute("accept") == "image/*"
            assert await camera.get_attribute("capture") == "environment"

            async def no_network(route: Route) -> None:
                await route.abort("internetdisconnected")

            await page.route("**/api/v1/photos", no_network)
            picture = {"name": "cleared.png", "mimeType": "image/png", "buffer": noisy_png(900)}
            await camera.set_input_files(files=[picture])
            thumbs = resolve.locator(".thumbs li")
            await expect(thumbs.locator(".state")).to_contain_text("上传失败：网络不通")
            await resolve.locator("button[type=submit]").click()
            await expect(page.locator("[data-action=resolve] > .error")).to_have_text(
                "有照片上传失败：请点“重试”或删除它，再提交。"
            )
            await expect(page.locator("#f-summary")).to_have_value("已组织清运，村口垃圾清理完毕")
            await page.unroute("**/api/v1/photos", no_network)
            uploads: list[int] = []
            page.on(
                "request",
                lambda r: (
                    uploads.append(len(r.post_data_buffer or b""))
                    if r.url.endswith("/api/v1/photos")
                    else None
                ),
            )
            await thumbs.locator("button", has_text="重试").click()
            await expect(thumbs).to_have_attribute("data-state", "uploaded")
            # every photo is up: the word about the failed one goes
            await expect(page.locator("[data-action=resolve] > .error")).to_have_text("")
            await expect(thumbs.locator("img")).to_have_attribute(
                "src", re.compile("^data:image/jpeg")
            )
            # made smaller in the browser: a JPEG, not the 2.4 MB PNG the camera gave
            assert uploads and uploads[0] < 1_000_000, uploads
            await fits(page)
            await shot(page, "phone-resolve")
            await resolve.locator("button[type=submit]").click()
            await expect(page.locator("#done")).to_have_text("已报告办结，等待回访。")
            # the photo on the matter's view, attached at the resolution, loaded through the
            # front door with the session's cookie
            shown = page.locator("#matter-head [data-photos] li")
            await expect(shown).to_have_count(1)
            await expect(shown).to_contain_text("办结时")
            # (not wait_for_function: its polling evaluates a string, which the policy refuses)
            image = page.locator("#matter-head [data-photos] img")
            await expect(image).to_have_js_property("naturalWidth", 900)
            # redrawn once the projection holds the resolution: no reload needed
            await expect(page.locator("#matter-head")).to_contain_text("已办结待回访")
            await expect(page.locator("#trail")).to_contain_text("已组织清运")
            await expect(page.locator("[data-card=resolve]")).to_have_count(0)
            # the reveal is on the trail, as the projection records it
            poll(
                lambda: httpx.get(
                    f"{projection}/api/v1/issues/{to_fix}/history", headers=DESK
                ).json()["events"],
                lambda events: any(e["type"].endswith("contact_revealed") for e in events),
            )
            await page.click("#back")
            await reload_until(page, "resolved", TO_FIX)
            await shot(page, "phone-after")

            # --- the line staff member, on a desktop
            desk = await log_in(browser, url, DESKTOP, "zhou.min")
            visits = desk.page
            await visits.wait_for_selector("body[data-drawn=visits]")
            await expect(visits.locator("#matter")).to_be_hidden()
            task = visits.locator(f"[data-task='{to_fix}']")
            await expect(task).to_contain_text("已组织清运")
            await expect(task).to_contain_text("三岐村党支部")
            await task.locator("input[value=failed]").check()
            await task.locator("button[type=submit]").click()
            await expect(task.locator(".error")).to_have_text(
                "回访未通过时，请在“回访情况”中写明仍存在的问题。"
            )
            await task.locator("textarea").fill("村口仍有两处垃圾未清走")
            still = {"name": "still.png", "mimeType": "image/png", "buffer": noisy_png(300)}
            await task.locator("input[type=file]").set_input_files(files=[still])
            await expect(task.locator(".thumbs li")).to_have_attribute("data-state", "uploaded")
            await shot(visits, "desktop-lookback")
            await task.locator("button[type=submit]").click()
            await expect(visits.locator("#visits-who")).to_have_text(
                "回访已记录：未通过，事项已退回承办单位重新办理。"
            )
            await expect(visits.locator(f"[data-task='{to_fix}']")).to_have_count(0)
            await assert_no_codes(visits, codes)

            # --- back on the secretary's phone: the matter is to do again
            # (reopened, then assigned again at once: either way it is to do again)
            poll(
                lambda: status_of(projection, to_fix),
                lambda s: s.get("status") in ("reopened", "assigned") and s["assignment_no"] == 2,
            )
            await reload_until(page, "new", TO_FIX)
            await group(page, "new", TO_FIX).click()
            await page.wait_for_selector("body[data-drawn^='matter:']")
            await expect(page.locator("[data-card=resolve]")).to_be_visible()
            await expect(page.locator("#trail")).to_contain_text("村口仍有两处垃圾未清走")
            # both photos on the matter: the unit's at the resolution, line staff's at the
            # look-back (intake keeps them; the same list through its API)
            async with httpx.AsyncClient(base_url=town["intake"].url, headers=DESK) as intake:
                found = (await intake.get(f"/api/v1/issues/{to_fix}/photos")).json()
            assert [p["stage"] for p in found] == ["resolution", "lookback"], found
            await expect(page.locator("#matter-head [data-photos] li")).to_have_count(2)
            await expect(page.locator("#matter-head [data-photos]")).to_contain_text("回访时")
            await shot(page, "phone-reopened")

            # --- in English, remembered
            await page.click("#lang")
            await expect(page.locator("#trail")).to_contain_text("Look-back failed")
            await expect(page.locator("[data-card=resolve] summary")).to_have_text("Resolve")
            await expect(page.locator("#matter-head [data-photos]")).to_contain_text(
                "At the resolution"
            )
            await page.click("#back")
            await page.wait_for_selector("body[data-drawn=unit]")
            await expect(page.locator("[data-group=sent_back] h2")).to_contain_text("Sent back")
            await assert_no_codes(page, codes)
            await shot(page, "phone-english")
            await no_serious_violations(page)

            # --- three years on, intake's retention rule removes the photos' bytes: the
            # matter says so where each was (its id and SHA-256 stay), and the image is gone
            pruned = await prune(database_url, nats_url, datetime.now(UTC) + timedelta(days=1100))
            assert pruned.total == 2, pruned
            await group(page, "new", TO_FIX).click()
            await page.wait_for_selector("body[data-drawn^='matter:']")
            gone = page.locator("#matter-head [data-photos] .pruned")
            await expect(gone).to_have_count(2)
            await expect(gone.first).to_have_text("Removed by the retention rule")
            assert await page.locator("#matter-head [data-photos] img").count() == 0
            photo_id = await page.locator("#matter-head [data-photo]").first.get_attribute(
                "data-photo"
            )
            assert (await page.request.get(f"{url}/api/v1/photos/{photo_id}")).status == 410
            await shot(page, "phone-pruned-english")
            await no_serious_violations(visits)
            for watched in (phone, desk):
                assert watched.errors == [], watched.errors
                assert watched.refused == [], watched.refused
            await browser.close()


async def test_on_a_desktop_a_unit_sets_a_plan_reports_progress_and_records_funding(
    town: dict[str, ServiceProcess], database_url: str, tmp_path: Path
) -> None:
    """The plan from a template (none chosen, then one that ends after the deadline: each
    said in Chinese, naming the field), a milestone reported, funding recorded (an amount
    that is no amount, a source not chosen: named); each step on the trail."""
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    await people(database_url)
    bridge = report(town["intake"].url, "村东小桥栏杆损坏")
    projection = town["projection"].url
    poll(lambda: status_of(projection, bridge), lambda s: s.get("unit") == "sanqi_branch")
    upstreams: dict[Any, str] = {name: f"127.0.0.1:{s.port}" for name, s in town.items()}
    with front_door(tmp_path, upstreams) as (door, _):
        url = door.url.rstrip("/")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
            watched = await log_in(browser, url, DESKTOP, "wang.jianguo")
            page = watched.page
            await page.wait_for_selector("body[data-drawn=unit]")
            await shot(page, "desktop-list")
            await group(page, "new", "村东小桥").click()
            await page.wait_for_selector("body[data-drawn='matter:assigned']")

            plan = page.locator("[data-action=plan]")
            await page.click("[data-card=plan] summary")
            await plan.locator("button[type=submit]").click()
            await expect(plan.locator(".error")).to_have_text("请选择“计划模板”。")
            await plan.locator("select").select_option(label="道路修复")
            await plan.locator("button[type=submit]").click()
            await expect(plan.locator(".error")).to_have_text(
                "计划晚于办结期限：请填写“延长期限的理由”。"
            )
            await plan.locator("textarea").fill("道路修复需先落实资金，期限随计划顺延")
            await plan.locator("button[type=submit]").click()
            await expect(page.locator("#done")).to_have_text("办理计划已制定。")

            progress = page.locator("[data-action=progress]")
            await page.click("[data-card=progress] summary")
            await progress.locator("select").select_option(index=1)
            await progress.locator("button[type=submit]").click()
            await expect(progress.locator(".error")).to_have_text("请填写“进展说明”。")
            await progress.locator("textarea").fill("已完成现场勘查，预算三万元")
            await progress.locator("input[name=done]").check()
            await progress.locator("button[type=submit]").click()
            await expect(page.locator("#done")).to_have_text("进度已报告。")

            funding = page.locator("[data-action=funding]")
            await page.click("[data-card=funding] summary")
            await funding.locator("input[name=amount]").fill("三万")
            await funding.locator("button[type=submit]").click()
            await expect(funding.locator(".error")).to_have_text(
                "“金额（元）”应为大于0的数字，最多两位小数。"
            )
            await funding.locator("input[name=amount]").fill("30000")
            await funding.locator("button[type=submit]").click()
            await expect(funding.locator(".error")).to_have_text("请选择“资金来源”。")
            await funding.locator("select[name=source]").select_option("self_raised")
            await funding.locator("select[name=status]").select_option("applied")
            await funding.locator("button[type=submit]").click()
            await expect(page.locator("#done")).to_have_text("资金已登记。")
            await shot(page, "desktop-plan-progress-funding")

            def kinds() -> list[str]:
                events = httpx.get(f"{projection}/api/v1/issues/{bridge}/history", headers=DESK)
                return [e["type"].rsplit(".", 1)[-1] for e in events.json()["events"]]

            wanted = {"plan_set", "progress_reported", "funding_recorded"}
            poll(kinds, lambda found: wanted <= set(found))
            await page.reload()
            await group(page, "new", "村东小桥").click()
            await expect(page.locator("#trail li")).to_have_count(len(kinds()))
            await expect(page.locator("#trail")).to_contain_text("已完成现场勘查")
            await no_serious_violations(page)
            assert watched.errors == [], watched.errors
            # a supervisor is sent to the desk, in words
            other = await log_in(browser, url, DESKTOP, "supervisor")
            await expect(other.page.locator("#list-error")).to_contain_text("督办台")
            await browser.close()
