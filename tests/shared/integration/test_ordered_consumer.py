"""An ordered consumer (the audit trail's) applies every event in stream order, once,
through its own failures, a message that always fails, and a database outage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.assignment.store import plumbing
from minqing.shared.messaging.consumer import Delivery, Outcome
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.infra import free_port
from minqing.shared.service.runtime import Runtime, build_runtime, start, stop
from minqing.shared.service.settings import Settings
from tests.support.events import publish, reported
from tests.support.harness import eventually


@dataclass
class Recorder:
    """Applies deliveries by remembering them; what a committed batch applied moves to
    ``applied`` (a failed one's never does). ``fails`` says how often an event id fails."""

    fails: dict[str, int] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    _pending: list[str] = field(default_factory=list)

    async def apply(
        self, session: AsyncSession, deliveries: Sequence[Delivery]
    ) -> Mapping[str, Outcome]:
        self._pending = []
        for d in deliveries:
            self.attempts.append(d.envelope.id)
            if self.fails.get(d.envelope.id, 0) > 0:
                self.fails[d.envelope.id] -= 1
                raise RuntimeError(f"cannot apply {d.envelope.id} yet")
            self._pending.append(d.envelope.id)
        return {}

    def committed(self) -> None:
        self.applied.extend(self._pending)
        self._pending = []


@asynccontextmanager
async def ordered(settings: Settings, recorder: Recorder) -> AsyncIterator[Runtime]:
    rt = build_runtime("assignment", settings, plumbing)
    rt.subscribe(None, recorder.apply, None, ordered=True, after_commit=recorder.committed)
    await start(rt)
    try:
        yield rt
    finally:
        await stop(rt)


async def settled(recorder: Recorder, count: int) -> list[str]:
    return await eventually(lambda: _now(recorder.applied), lambda a: len(a) >= count)


async def _now(value: list[str]) -> list[str]:
    return list(value)


async def test_its_own_failure_is_retried_and_nothing_passes_it(settings: Settings) -> None:
    events = [reported() for _ in range(5)]
    await publish(settings, *events)
    recorder = Recorder(fails={events[2].id: 3})
    settings = settings.model_copy(
        update={"consumer_max_deliver": 5, "consumer_retry_delay_seconds": 0.01}
    )

    async with ordered(settings, recorder):
        applied = await settled(recorder, 5)

    assert applied == [e.id for e in events]
    assert recorder.attempts.count(events[2].id) == 4


async def test_what_always_fails_is_dead_lettered_and_the_rest_follow_in_order(
    settings: Settings,
) -> None:
    events = [reported() for _ in range(4)]
    await publish(settings, *events)
    recorder = Recorder(fails={events[1].id: 100})
    settings = settings.model_copy(
        update={"consumer_max_deliver": 3, "consumer_retry_delay_seconds": 0.01}
    )

    async with ordered(settings, recorder) as rt:
        applied = await settled(recorder, 3)
        async with rt.sessions() as session:
            dead = (await session.execute(select(plumbing.dead_letters))).one()

    assert applied == [events[0].id, events[2].id, events[3].id]
    assert (dead.event_id, dead.stream_seq) == (events[1].id, 2)
    assert "failed 3 times" in dead.reason


async def test_a_database_outage_loses_nothing_and_keeps_the_order(settings: Settings) -> None:
    before, during = [reported() for _ in range(3)], [reported() for _ in range(4)]
    await publish(settings, *before)
    recorder = Recorder()
    unreachable = make_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", settings
    )

    async with ordered(settings, recorder) as rt:
        await settled(recorder, 3)
        rt.sessions.configure(bind=unreachable)  # the database goes away
        try:
            await publish(settings, *during)
            await asyncio.sleep(2.5)  # batches fetched and tried while it is away
        finally:
            rt.sessions.configure(bind=rt.engine)
            await unreachable.dispose()
        applied = await settled(recorder, 7)
        async with rt.sessions() as session:
            letters = (await session.execute(select(plumbing.dead_letters))).all()

    assert applied == [e.id for e in before + during]
    assert letters == []
