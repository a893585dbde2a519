"""The visit page in a real browser (Debian's chromium, driven by Playwright) on a 360 px
phone, through the front door (a real Caddy running the Caddyfile generated from the
services as built now, its Content-Security-Policy on every answer): a grid worker logs in,
sends an empty form and is told in Chinese which fields are missing; the signal goes
(``context.set_offline``), the page is opened again from the service worker's copy, and
three matters (the first with a photo from the camera, made smaller on the phone) and a
visit that found nothing are recorded and wait on the phone; the signal returns, the first
answers to the photo's upload and to the first report are lost on the way back (each was
kept, the phone never hears), and everything arrives once: intake holds exactly three
reports on three matters and one photo, attached to the first matter, the projection lists
exactly three matters reported on visits, and the visit is counted.
The page in English, then on a desktop; axe-core finds no serious violation logged in,
with records waiting, and with records sent. Screenshots in test-artifacts/."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import func, select

from minqing.services.frontdoor import CONTENT_SECURITY_POLICY
from minqing.services.intake.app import create_app as create_intake
from minqing.services.intake.photos.tables import photos
from minqing.services.intake.store import reports
from minqing.services.intake.visits.tables import visits
from minqing.services.projection.app import create_app as create_projection
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.e2e.test_desk import ARTIFACTS, chromium
from tests.e2e.test_resident_pages import (
    SANQI,
    Watched,
    no_serious_violations,
    serving,
)
from tests.support.frontdoor import front_door
from tests.support.harness import eventually
from tests.support.identity import DESK, TOWN, enrol, give_password
from tests.support.tour import keep

if TYPE_CHECKING:
    from playwright.async_api import Page, Route

pytestmark = pytest.mark.e2e

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
PASSWORD = "sanqi-door-to-door"
GRID_WORKER = Principal(Kind.PERSON, "zhou-min", "周敏", (Membership(TOWN, Role.REPORTER),))
# Three matters found on one round of visits: different villages and kinds, never merged.
MATTERS = [
    ("sanqi", "street_lights", "三岐村村口三盏路灯不亮，老人晚上出门看不见路"),
    ("qizhuang", "water", "戚庄村东头自来水三天没来，十几户在挑井水"),
    ("xuma", "neighbour_dispute", "徐马村两户为宅基地边界争吵，已经动手推搡"),
]


def camera_png(width: int, height: int) -> bytes:
    """A real PNG as large as a phone's photo, of something like a scene (smooth shades with
    a little grain; pure noise would not compress as a photo does)."""
    grain = os.urandom(width * 3)
    rows = []
    for y in range(height):
        shade = 255 * y // height
        row = bytearray(b"\x00")
        for x in range(width):
            row += bytes(
                (
                    (255 * x // width + grain[3 * x] % 9) & 255,
                    (shade + grain[3 * x + 1] % 9) & 255,
                    (128 + grain[(3 * x + 2 + y) % len(grain)] % 9) & 255,
                )
            )
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixels = zlib.compress(b"".join(rows), 1)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


STORAGE_FULL = "三岐村南路面塌陷一处，约两米见方"
# localStorage filled to the last character, then 8 KB freed: room for a record, not a photo
FILL_STORAGE = """() => {
  let n = 0;
  for (let size = 1 << 20; size >= 1; size = Math.floor(size / 2)) {
    const chunk = "x".repeat(size);
    for (;;) {
      try { localStorage.setItem(`filler-${n}`, chunk); n += 1; } catch { break; }
    }
  }
  localStorage.removeItem("filler-0");
  localStorage.setItem("filler-0", "x".repeat((1 << 20) - 8192));
}"""


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"visit-{name}.png"), full_page=True)
    await keep(page, f"visit-{name}")


async def ready(page: Page) -> None:
    await page.wait_for_selector("body[data-ready=true]")


async def test_a_grid_worker_records_three_matters_offline_and_they_arrive_once_each(
    settings: Settings, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    browser_path = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    intake_port, projection_port = free_port(), free_port()
    upstreams: dict[Any, str] = {
        "intake": f"127.0.0.1:{intake_port}",
        "projection": f"127.0.0.1:{projection_port}",
        "assignment": "127.0.0.1:1",  # not needed by the visit page
        "followup": "127.0.0.1:1",
    }
    with front_door(tmp_path, upstreams) as (door, _):
        url = door.url.rstrip("/")
        intake = create_intake(settings)
        projection = create_projection(settings)
        async with (
            serving(intake, intake_port),
            serving(projection, projection_port),
            async_playwright() as pw,
        ):
            sessions = intake.state.runtime.sessions
            await enrol(sessions)
            await enrol(sessions, {"zhou-min": GRID_WORKER})
            await give_password(sessions, GRID_WORKER, PASSWORD)
            async with httpx.AsyncClient(base_url=url) as anyone:
                for path in ("/visit/", "/visit/visit.js", "/visit/sw.js"):
                    answer = await anyone.get(path)
                    assert answer.status_code == 200, (path, answer.status_code)
                    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY

            browser = await pw.chromium.launch(executable_path=browser_path, headless=True)
            try:
                context = await browser.new_context(
                    locale="zh-CN", viewport=PHONE, geolocation=SANQI, permissions=["geolocation"]
                )
                watched = Watched(await context.new_page())
                page = watched.page
                await page.goto(url + "/visit/")
                await ready(page)
                assert await page.title() == "民情 · 走访记录"
                await expect(page.locator("#login-form")).to_be_visible()
                await page.fill("#login-name", "zhou-min")
                await page.fill("#login-password", "wrong-password")
                await page.click("#login-button")
                await expect(page.locator("#login-problem")).to_have_text("登录名或密码不对")
                await page.fill("#login-password", PASSWORD)
                await page.click("#login-button")
                await expect(page.locator("#work")).to_be_visible()
                await expect(page.locator("#who")).to_have_text("周敏")
                # The service worker holds the page's files before the signal goes.
                assert await page.evaluate(
                    "navigator.serviceWorker.ready.then((r) => r.active.state)"
                ) in ("activating", "activated")
                await page.wait_for_function("navigator.serviceWorker.controller !== null")
                await no_serious_violations(page)
                await shot(page, "phone")

                # An empty form: each missing field named, in Chinese, on the page.
                await page.click("#submit")
                errors = page.locator("#errors")
                await expect(errors).to_contain_text("村（社区）：请从列表中选一项")
                await expect(errors).to_contain_text("事项类别：请从列表中选一项")
                await expect(errors).to_contain_text("情况描述：必须填写")
                await expect(page.locator("#e-description")).to_have_text("必须填写")
                assert await page.get_attribute("#village", "aria-invalid") == "true"
                await shot(page, "errors-phone")

                # No signal: the page opens again from the service worker's copy, still
                # logged in, and says there is no signal.
                await context.set_offline(True)
                await page.reload()
                await ready(page)
                await expect(page.locator("#work")).to_be_visible()
                await expect(page.locator("#signal")).to_have_text("没有信号")

                for n, (village, category, description) in enumerate(MATTERS):
                    await page.select_option("#village", village)
                    await page.select_option("#category", category)
                    await page.fill("#description", description)
                    if n == 0:
                        await page.click("#locate")
                        await expect(page.locator("#located")).to_contain_text("已定位（33.51000")
                        # a photo of the dark lamps: 2 MB from the camera, kept much smaller
                        camera = {"name": "lamps.png", "mimeType": "image/png"}
                        await page.set_input_files(
                            "#photo", files=[{**camera, "buffer": camera_png(2000, 1500)}]
                        )
                        await expect(page.locator("#photo-chosen")).to_be_visible()
                        await expect(page.locator("#photo-note")).to_contain_text("照片已压缩")
                    await page.click("#submit")
                    await expect(page.locator("#waiting li")).to_have_count(n + 1)
                await expect(errors).to_be_hidden()
                # A visit that found nothing: four households in Sanqi.
                await page.check("input[name=kind][value=nothing]")
                await expect(page.locator("#category")).to_be_hidden()
                await page.select_option("#village", "sanqi")
                await page.fill("#households", "0")
                await page.click("#submit")
                await expect(errors).to_contain_text("走访户数：请填 1 到 500 之间的整数")
                await page.fill("#households", "4")
                await page.click("#submit")
                await expect(page.locator("#waiting li")).to_have_count(4)
                await expect(page.locator("#waiting-count")).to_have_text("4")
                await expect(page.locator("#sent li")).to_have_count(0)
                await expect(page.locator("#waiting")).to_contain_text("走访无事项 · 三岐村 · 4 户")
                await expect(page.locator("#waiting li img.thumb")).to_have_count(1)
                await expect(page.locator("#waiting")).to_contain_text("路灯 · 含照片")
                kept = await page.evaluate(
                    "JSON.parse(localStorage.getItem('minqing.visit.queue'))[0].photo.length"
                )
                assert 10_000 < kept < 600_000, kept  # a JPEG at most 1280 px, not megabytes
                side = await page.evaluate(
                    """new Promise((done) => {
                      const image = new Image();
                      image.onload = () => done([image.naturalWidth, image.naturalHeight]);
                      image.src = JSON.parse(localStorage.getItem('minqing.visit.queue'))[0].photo;
                    })"""
                )
                assert side == [1280, 960], side
                await no_serious_violations(page)
                await shot(page, "waiting-phone")

                # The signal returns; the answer to the first report is lost on its way
                # back: intake made the matter, the phone heard nothing and sends it again.
                sent_keys: list[str] = []

                async def lose_first_answer(route: Route) -> None:
                    sent_keys.append(route.request.headers["idempotency-key"])
                    answer = await route.fetch()
                    if len(sent_keys) == 1:
                        assert answer.status == 201
                        await route.abort("connectionreset")
                    else:
                        await route.fulfill(response=answer)

                uploaded: list[str] = []

                async def lose_first_upload(route: Route) -> None:
                    answer = await route.fetch()
                    uploaded.append((await answer.json())["photo_id"])
                    if len(uploaded) == 1:
                        assert answer.status == 201
                        await route.abort("connectionreset")
                    else:
                        assert answer.status == 200  # the same bytes: the same photo
                        await route.fulfill(response=answer)

                await page.route("**/api/v1/photos", lose_first_upload)
                await page.route("**/api/v1/reports", lose_first_answer)
                await context.set_offline(False)
                await expect(page.locator("#sent li")).to_have_count(4, timeout=30_000)
                await expect(page.locator("#waiting li")).to_have_count(0)
                await expect(page.locator("#signal")).to_have_text("有信号")
                assert sent_keys[0] == sent_keys[1]  # the retry carried the same key
                assert len(sent_keys) == 4 and len(set(sent_keys)) == 3
                assert len(uploaded) == 2 and uploaded[0] == uploaded[1]
                # the photo's bytes left the phone's list with the report
                assert await page.evaluate(
                    "JSON.parse(localStorage.getItem('minqing.visit.queue')).every((i) => !i.photo)"
                )
                references = await page.locator("#sent .reference").all_inner_texts()
                assert len(set(references)) == 4 and all(len(r) == 26 for r in references)
                await shot(page, "sent-phone")

                # Exactly three matters: in intake, and on the projection's list.
                async with sessions() as session:
                    held = await session.execute(
                        select(func.count(), func.count(func.distinct(reports.c.issue_id)))
                        .select_from(reports)
                        .where(reports.c.source == "visit")
                    )
                    assert tuple(held.one()) == (3, 3)
                    described = set((await session.scalars(select(reports.c.description))).all())
                    assert described == {d for _, _, d in MATTERS}
                    lamps = await session.scalar(
                        select(reports.c.issue_id).where(reports.c.description == MATTERS[0][2])
                    )
                    kept_photos = (await session.execute(select(photos))).mappings().all()
                    assert [(p["issue_id"], p["stage"]) for p in kept_photos] == [
                        (lamps, "reported")
                    ]
                    assert kept_photos[0]["content_type"] == "image/jpeg"
                    recorded = (await session.execute(select(visits))).mappings().all()
                    assert [(v["village"], v["households"]) for v in recorded] == [("sanqi", 4)]
                    assert recorded[0]["visitor_name"] == "周敏"
                async with httpx.AsyncClient(base_url=url, headers=DESK) as desk:

                    async def listed() -> list[dict[str, Any]]:
                        answer = await desk.get("/api/v1/issues", params={"source": "visit"})
                        assert answer.status_code == 200, answer.text
                        items: list[dict[str, Any]] = answer.json()["items"]
                        return items

                    found = await eventually(listed, lambda items: len(items) >= 3)
                    assert sorted(i["village"] for i in found) == ["qizhuang", "sanqi", "xuma"]

                # The phone's storage nearly full: a matter with a photo is kept without the
                # photo, the page says so kindly, and the record still arrives.
                await context.set_offline(True)
                await page.check("input[name=kind][value=matter]")
                await page.select_option("#village", "sanqi")
                await page.select_option("#category", "roads")
                await page.fill("#description", STORAGE_FULL)
                await page.set_input_files(
                    "#photo", files=[{**camera, "buffer": camera_png(1600, 1200)}]
                )
                await expect(page.locator("#photo-chosen")).to_be_visible()
                await page.evaluate(FILL_STORAGE)
                await page.click("#submit")
                await expect(page.locator("#waiting li")).to_have_count(1)
                await expect(page.locator("#photo-note")).to_contain_text("手机里存不下这张照片了")
                await expect(page.locator("#waiting li")).to_contain_text(
                    "记录已经保存（没有照片）"
                )
                await expect(page.locator("#waiting li img.thumb")).to_have_count(0)
                await shot(page, "storage-full-phone")
                await page.evaluate(
                    "Object.keys(localStorage).filter((k) => k.startsWith('filler-'))"
                    ".forEach((k) => localStorage.removeItem(k))"
                )
                await context.set_offline(False)
                await expect(page.locator("#sent li")).to_have_count(5, timeout=30_000)
                async with sessions() as session:
                    held = await session.scalar(
                        select(func.count()).where(reports.c.description == STORAGE_FULL)
                    )
                    assert held == 1
                    assert await session.scalar(select(func.count()).select_from(photos)) == 1

                # English, then a desktop.
                await page.click("#lang")
                await expect(page.locator("h1")).to_have_text("Visit records")
                await expect(page.locator("#sent")).to_contain_text("Visit, nothing found")
                await no_serious_violations(page)
                await shot(page, "sent-phone-en")
                await page.set_viewport_size(DESKTOP)
                await shot(page, "sent-desktop-en")
                await context.close()
            finally:
                await browser.close()
        assert watched.errors == []  # no script error
        assert watched.refused == []  # nothing the front door's policy forbids
