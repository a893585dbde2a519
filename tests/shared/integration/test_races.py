"""``first_wins`` on PostgreSQL: contenders that all checked, found nothing and inserted
under one key get the winner's answer, whether the violation comes through SQLAlchemy or
straight from asyncpg (``minqing.shared.persistence.bulk``); a violation of another
constraint stands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from minqing.shared.persistence.bulk import execute
from minqing.shared.persistence.db import Sessions, make_engine, make_sessions
from minqing.shared.persistence.races import first_wins
from minqing.shared.service.settings import Settings

CONTENDERS = 12


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[Sessions]:
    engine = make_engine(settings.database_url, settings)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "create table claims (key text not null, claimant text not null,"
                " note text, constraint claims_key unique (key), constraint claims_note unique"
                " (note))"
            )
        )
    try:
        yield make_sessions(engine)
    finally:
        await engine.dispose()


async def claimant_of(sessions: Sessions, key: str) -> str | None:
    async with sessions() as session:
        query = text("select claimant from claims where key = :key")
        found = await session.scalar(query, {"key": key})
        return None if found is None else str(found)


async def claim(
    sessions: Sessions, key: str, claimant: str, *, straight: bool, note: str | None = None
) -> str:
    """Check, then insert (``straight`` on asyncpg, else through SQLAlchemy): the race every
    idempotent use case runs."""
    async with sessions() as session:
        query = text("select claimant from claims where key = :key")
        if (earlier := await session.scalar(query, {"key": key})) is not None:
            return str(earlier)
        await asyncio.sleep(0.2)  # everyone has checked before anyone inserts
        if straight:
            await execute(session, "insert into claims values ($1, $2, $3)", key, claimant, note)
        else:
            values = {"key": key, "claimant": claimant, "note": note}
            await session.execute(
                text("insert into claims values (:key, :claimant, :note)"), values
            )
        await session.commit()
        return claimant


async def test_every_contender_gets_the_winners_answer(sessions: Sessions) -> None:
    lookups = 0

    async def contend(n: int) -> str:
        async def winner() -> str | None:
            nonlocal lookups
            lookups += 1
            return await claimant_of(sessions, "k1")

        return await first_wins(
            lambda: claim(sessions, "k1", f"c-{n}", straight=n % 2 == 1),
            constraints=["claims_key"],
            then=winner,
        )

    answers = await asyncio.gather(*(contend(n) for n in range(CONTENDERS)))

    assert len(set(answers)) == 1
    assert lookups == CONTENDERS - 1  # the race happened: all but one lost it
    async with sessions() as session:
        assert await session.scalar(text("select count(*) from claims")) == 1


async def test_a_violation_of_another_constraint_or_with_no_winner_found_stands(
    sessions: Sessions,
) -> None:
    async def nobody() -> str | None:
        return None

    async with sessions() as session:
        await session.execute(text("insert into claims values ('k0', 'c-9', 'taken')"))
        await session.commit()

    with pytest.raises(IntegrityError, match="claims_note"):  # through SQLAlchemy
        await first_wins(
            lambda: claim(sessions, "k2", "c-2", straight=False, note="taken"),
            constraints=["claims_key"],
            then=lambda: claimant_of(sessions, "k2"),
        )
    with pytest.raises(asyncpg.UniqueViolationError, match="claims_note"):  # straight
        await first_wins(
            lambda: claim(sessions, "k3", "c-3", straight=True, note="taken"),
            constraints=["claims_note"],
            then=nobody,
        )
