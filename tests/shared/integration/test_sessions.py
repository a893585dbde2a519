"""The pages' session and the tokens, as an attacker would try them: a change without its
CSRF token, a guessed password, an ended, idle or expired session, a revoked or expired
token, a malformed header. Each a clear 4xx, nothing recorded."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from minqing.services.intake.app import create_app as intake_app
from minqing.services.intake.store import reports
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.identity import credentials
from minqing.shared.identity.tables import tokens
from minqing.shared.identity.web import CSRF_HEADER, SESSION_COOKIE
from minqing.shared.persistence.db import Sessions
from minqing.shared.service.settings import Settings
from tests.support.clock import SetClock
from tests.support.harness import eventually, serve
from tests.support.identity import AS, PEOPLE, give_password, token_of

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
REPORT = {
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps dark since Monday",
    "category": "street_lights",
    "village": "shihu",
    "source": "visit",
}


@dataclass
class Town:
    clock: SetClock
    desk: httpx.AsyncClient  # the projection: the pages' service
    intake: httpx.AsyncClient
    sessions: Sessions

    async def log_in(self, name: str = "reporter", password: str = PASSWORD) -> httpx.Response:
        return await self.desk.post(
            "/api/v1/session", json={"name": name, "password": password}, headers=NOBODY
        )

    async def reports(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(reports)) or 0)


NOBODY = {"Authorization": ""}  # the clients send the desk's token unless told otherwise


@pytest.fixture
async def town(settings: Settings) -> AsyncIterator[Town]:
    settings = settings.model_copy(
        update={"login_attempts_per_name": "3/minute", "session_idle_minutes": 30.0}
    )
    clock = SetClock(NOW)
    async with AsyncExitStack() as stack:
        desk_app = projection_app(settings, clock=clock)
        desk = await stack.enter_async_context(serve(desk_app))
        intake = await stack.enter_async_context(serve(intake_app(settings, clock=clock)))
        sessions = desk_app.state.runtime.sessions
        await give_password(sessions, PEOPLE["reporter"], PASSWORD)
        for client in (desk, intake):
            del client.headers["Authorization"]  # these tests say who calls
        yield Town(clock, desk, intake, sessions)


def cookie(login: httpx.Response) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={login.cookies[SESSION_COOKIE]}"}


async def test_a_login_is_a_session_cookie_and_the_csrf_token_to_send_with_changes(
    town: Town,
) -> None:
    login = await town.log_in()
    assert login.status_code == 200, login.text
    set_cookie = login.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert "secure" not in set_cookie  # plain HTTP here; over the TLS front door it is
    me = login.json()
    assert (me["id"], me["memberships"]) == (
        "person:reporter",
        [{"unit": "town", "role": "reporter"}],
    )
    asked = await town.desk.get("/api/v1/session", headers=cookie(login))
    assert asked.json()["csrf_token"] == me["csrf_token"]

    # a change with the cookie alone (a form another site submits) is refused
    for headers in ({}, {CSRF_HEADER: "guessed"}):
        refused = await town.intake.post(
            "/api/v1/reports", json=REPORT, headers=cookie(login) | headers
        )
        assert refused.status_code == 403, refused.text
        assert "CSRF" in refused.json()["detail"]
    assert await town.reports() == 0
    sent = await town.intake.post(
        "/api/v1/reports",
        json=REPORT,
        headers=cookie(login) | {CSRF_HEADER: me["csrf_token"]},
    )
    assert sent.status_code == 201, sent.text
    assert await town.reports() == 1


async def test_a_guessed_password_is_refused_then_slowed_and_logged(
    town: Town, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="minqing.shared.identity.session_api")
    for _ in range(3):
        wrong = await town.log_in(password="hunter2hunter2")
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "wrong name or password")
    unknown = await town.log_in(name="nobody-here", password=PASSWORD)
    assert unknown.json()["detail"] == "wrong name or password"  # no hint the name exists
    slowed = await town.log_in()  # even the right password, now
    assert slowed.status_code == 429
    assert int(slowed.headers["Retry-After"]) >= 1
    assert SESSION_COOKIE not in slowed.cookies
    assert any("login failed for 'reporter'" in r.getMessage() for r in caplog.records)
    assert any("too many attempts" in r.getMessage() for r in caplog.records)
    other = await town.desk.post(  # another person is not slowed by it
        "/api/v1/session", json={"name": "supervisor", "password": "x" * 12}, headers=NOBODY
    )
    assert other.status_code == 401


async def test_a_session_ends_at_logout_and_after_idling(town: Town) -> None:
    login = await town.log_in()
    assert (await town.desk.get("/api/v1/issues", headers=cookie(login))).status_code == 403
    assert (await town.intake.get("/api/v1/reference", headers=cookie(login))).status_code == 200
    town.clock.advance(timedelta(minutes=29))
    assert (await town.intake.get("/api/v1/reference", headers=cookie(login))).status_code == 200
    town.clock.advance(timedelta(minutes=31))  # 31 minutes since the last request
    idle = await town.intake.get("/api/v1/reference", headers=cookie(login))
    assert idle.status_code == 401
    assert "log in again" in idle.json()["detail"]

    again = await town.log_in()
    ended = await town.desk.delete("/api/v1/session", headers=cookie(again))
    assert ended.status_code == 204
    after = await town.intake.get("/api/v1/reference", headers=cookie(again))
    assert after.status_code == 401


async def test_missing_malformed_revoked_and_expired_tokens_are_401(town: Town) -> None:
    def bearer(value: str) -> dict[str, str]:
        return {"Authorization": value}

    assert (await town.intake.post("/api/v1/reports", json=REPORT)).status_code == 401
    for header in ("Basic cmVwb3J0ZXI6eA==", "Bearer", "Bearer mq_not-a-token", "token"):
        refused = await town.intake.post("/api/v1/reports", json=REPORT, headers=bearer(header))
        assert refused.status_code == 401, header
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    ok = await town.intake.get("/api/v1/reference", headers=AS["reporter"])
    assert ok.status_code == 200
    async with town.sessions() as session:
        digest = credentials.digest(token_of("reporter"))
        await session.execute(
            update(tokens).where(tokens.c.token_hash == digest).values(expires_at=NOW)
        )
        await session.commit()
    # the token's holder was kept by intake: forgotten when PostgreSQL announces the change
    await eventually(
        lambda: town.intake.get("/api/v1/reference", headers=AS["reporter"]),
        lambda answer: answer.status_code == 401,
        within=5,
        interval=0.01,
    )
    async with town.sessions() as session:
        digest = credentials.digest(token_of("operator"))
        await session.execute(
            update(tokens).where(tokens.c.token_hash == digest).values(revoked_at=NOW)
        )
        await session.commit()
    await eventually(
        lambda: town.intake.get("/api/v1/dead-letters", headers=AS["operator"]),
        lambda answer: answer.status_code == 401,
        within=5,
        interval=0.01,
    )
    assert await town.reports() == 0
