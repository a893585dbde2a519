"""Who holds a token is kept by each service between requests, and forgotten as soon as
PostgreSQL announces a change of the identity schema: a token revoked, a person disabled,
a role taken back, whoever does it (here: SQL in another session, as the CLI and psql
do). Without its listening connection a service reads the database on every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from minqing.services.intake.app import create_app
from minqing.shared.identity import credentials, store
from minqing.shared.identity.cache import LISTENER_NAME, PrincipalCache
from minqing.shared.identity.principal import Membership, Role
from minqing.shared.persistence.db import Sessions
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, serve
from tests.support.identity import AS, PEOPLE, token_of

AT = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


@dataclass
class Intake:
    client: httpx.AsyncClient
    cache: PrincipalCache
    sessions: Sessions

    async def reference(self, who: str) -> int:
        return (await self.client.get("/api/v1/reference", headers=AS[who])).status_code


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[Intake]:
    app: FastAPI = create_app(settings)
    async with serve(app) as client:
        cache = app.state.authenticator.tokens
        await eventually(lambda: _true(), lambda _: cache.live, within=10)
        yield Intake(client, cache, app.state.runtime.sessions)


async def _true() -> bool:
    return True


def kept(cache: PrincipalCache, who: str) -> bool:
    return cache.get(credentials.digest(token_of(who)), AT) is not None


async def known(intake: Intake, who: str) -> None:
    """``who`` answered and kept (the enrolment's own announcements may still arrive, each
    clearing the cache, just after the service started)."""
    await eventually(
        lambda: intake.reference(who), lambda s: s == 200 and kept(intake.cache, who), within=5
    )


async def answers(intake: Intake, who: str, status: int) -> None:
    await eventually(lambda: intake.reference(who), lambda s: s == status, within=5, interval=0.01)


async def test_a_token_holder_is_kept_and_forgotten_when_the_token_is_revoked(
    intake: Intake,
) -> None:
    await known(intake, "reporter")
    assert await intake.reference("reporter") == 200  # from memory
    async with intake.sessions() as session:
        revoked = await store.revoke_tokens(session, PEOPLE["reporter"].id, by="tests", at=AT)
        await session.commit()
    assert revoked == 1
    await answers(intake, "reporter", 401)
    assert not kept(intake.cache, "reporter")


async def test_a_disabled_person_and_a_role_taken_back_are_refused_at_once(
    intake: Intake,
) -> None:
    for who in ("reporter", "supervisor"):
        await known(intake, who)
    async with intake.sessions() as session:
        await store.disable(session, PEOPLE["reporter"].id, by="tests", at=AT)
        await session.commit()
    await answers(intake, "reporter", 401)
    supervisor = PEOPLE["supervisor"]
    async with intake.sessions() as session:
        for membership in supervisor.memberships:
            await store.take_back(session, supervisor.id, membership)
        await session.commit()
    await answers(intake, "supervisor", 403)  # known, but no role reads the reference now
    async with intake.sessions() as session:
        await store.grant(
            session, supervisor.id, [Membership("town", Role.SUPERVISOR)], by="tests", at=AT
        )
        await session.commit()
    await answers(intake, "supervisor", 200)


async def test_without_its_listening_connection_a_service_reads_every_request(
    intake: Intake,
) -> None:
    await known(intake, "reporter")
    async with intake.sessions() as session:
        ended = await session.scalar(
            text(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                "where datname = current_database() and application_name = :name"
            ),
            {"name": LISTENER_NAME},
        )
    assert ended == 1
    await eventually(lambda: _true(), lambda _: not kept(intake.cache, "reporter"), within=5)
    assert await intake.reference("reporter") == 200  # read from the database meanwhile
    await eventually(lambda: _true(), lambda _: intake.cache.live, within=10)  # listening again
    await known(intake, "reporter")
