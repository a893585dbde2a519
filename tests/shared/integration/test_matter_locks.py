"""Per-matter locks: a second transaction on the same matter waits for the first to end,
even while the matter has no row yet (what a row lock cannot do), and then reads what the
first wrote; other matters do not wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from minqing.services.assignment.domain import Assignment
from minqing.services.assignment.store import _table as assignments
from minqing.services.assignment.store import plumbing
from minqing.shared.messaging.consumer import _Statements
from minqing.shared.persistence.db import Sessions, make_engine, make_sessions
from minqing.shared.persistence.matter_locks import BUCKETS, lock_matters
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually

WAITING = "select count(*) from pg_locks where locktype = 'advisory' and not granted"


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[Sessions]:
    engine = make_engine(settings.database_url, settings)
    try:
        yield make_sessions(engine)
    finally:
        await engine.dispose()


async def waiting_for_locks(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(text(WAITING)) or 0)


async def test_a_second_transaction_on_the_same_matter_waits_for_the_first(
    sessions: Sessions,
) -> None:
    async with sessions() as first, sessions() as second, sessions() as other:
        await lock_matters(first, "assignment", ["01MATTER", "01OTHER"])
        # a matter nobody holds is not held up
        await asyncio.wait_for(lock_matters(other, "elsewhere", ["01MATTER"]), 5)
        waiting = asyncio.create_task(lock_matters(second, "assignment", ["01MATTER"]))
        await eventually(lambda: waiting_for_locks(sessions), lambda n: n == 1)
        assert not waiting.done()
        await first.commit()
        await asyncio.wait_for(waiting, 5)
        await second.rollback()
        await other.rollback()


async def test_a_new_matters_row_is_read_after_the_transaction_that_wrote_it(
    sessions: Sessions,
) -> None:
    """Two transactions each load a matter that has no row yet: the second waits, then
    finds the first one's row instead of writing its own over it."""
    assigned = Assignment(
        category="street_lights",
        village="shihu",
        unit="construction",
        person_id="construction-head",
        person_name="Wang",
        deadline=date(2026, 3, 2),
        assignment_no=1,
        assigned_on=date(2026, 2, 24),
        working_days=5,
        calendar="cn-official",
    )
    async with sessions() as first, sessions() as second:
        assert await assignments.load_row(first, "01NEWMATTER") is None
        reading = asyncio.create_task(assignments.load_row(second, "01NEWMATTER"))
        try:
            await eventually(lambda: waiting_for_locks(sessions), lambda n: n == 1)
            now = datetime(2026, 2, 24, tzinfo=UTC)
            await assignments.save_rows(first, [assignments.row("01NEWMATTER", assigned, now)])
            await first.commit()
            row = await asyncio.wait_for(reading, 5)
        finally:
            if not reading.done():
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
        assert row is not None and assignments.state(row) == assigned
        await second.rollback()


async def test_a_transaction_on_thousands_of_matters_takes_a_bounded_number_of_locks(
    sessions: Sessions,
) -> None:
    """PostgreSQL's lock table is shared and bounded: a batch of many new matters must not
    take a slot for each."""
    async with sessions() as session:
        await lock_matters(session, "assignment", [f"01MATTER{n:05d}" for n in range(3000)])
        held = await session.scalar(
            text(
                "select count(*) from pg_locks where locktype = 'advisory' "
                "and pid = pg_backend_pid()"
            )
        )
        await session.rollback()
    assert held is not None and 1 < held <= BUCKETS


async def test_a_consumer_claims_its_events_before_it_takes_their_matters_locks(
    sessions: Sessions,
) -> None:
    """One statement claims the inbox rows and takes the matters' locks, in that order:
    while a replica's uncommitted claim of the same event holds it up, it holds no lock
    (else the replica, wanting that lock before it commits, would wait for it in a
    circle), and it sees the event as processed once the replica commits."""
    claim = _Statements(plumbing).claim_and_lock
    params = {"consumer": "c", "ids": ["E1", "E2"], "space": "assignment", "matters": ["M1"]}
    held = "select count(*) from pg_locks where locktype = 'advisory' and pid = :pid"
    async with sessions() as replica, sessions() as consumer:
        await replica.execute(
            text("insert into assignment.inbox (consumer, event_id) values ('c', 'E1')")
        )
        pid = await consumer.scalar(text("select pg_backend_pid()"))
        claiming = asyncio.create_task(consumer.execute(claim, params))
        async with sessions() as look:
            await eventually(
                lambda: look.scalar(
                    text(
                        "select count(*) from pg_stat_activity "
                        "where pid = :pid and wait_event_type = 'Lock'"
                    ),
                    {"pid": pid},
                ),
                lambda n: n == 1,
            )
            assert await look.scalar(text(held), {"pid": pid}) == 0
            await replica.commit()
            row = (await asyncio.wait_for(claiming, 5)).one()
            assert (sorted(row.ids), row.locked) == (["E2"], 1)
            assert await look.scalar(text(held), {"pid": pid}) == 1
        await consumer.rollback()
