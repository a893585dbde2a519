"""Pruning keeps the plumbing tables bounded, within the documented horizons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from minqing.services.assignment.store import plumbing
from minqing.shared.persistence.housekeeping import Housekeeping
from minqing.shared.service.runtime import build_runtime
from minqing.shared.service.settings import Settings

LONG_AGO = datetime.now(UTC) - timedelta(days=400)


async def test_old_published_rows_processed_ids_and_dead_letters_are_pruned_not_the_rest(
    settings: Settings,
) -> None:
    rt = build_runtime("assignment", settings, plumbing)
    p = plumbing
    dead = {
        "consumer": "assignment",
        "stream": "S",
        "stream_epoch": 1,
        "subject": "s",
        "deliveries": 1,
        "reason": "r",
        "headers": {},
        "raw": b"x",
    }
    try:
        async with rt.sessions() as s:
            await s.execute(
                insert(p.outbox),
                [
                    {
                        "event_id": "old-sent",
                        "subject": "s",
                        "payload": "{}",
                        "created_at": LONG_AGO,
                        "published_at": LONG_AGO,
                    },
                    {
                        "event_id": "old-unsent",
                        "subject": "s",
                        "payload": "{}",
                        "created_at": LONG_AGO,
                        "published_at": None,
                    },
                    {
                        "event_id": "new-sent",
                        "subject": "s",
                        "payload": "{}",
                        "created_at": datetime.now(UTC),
                        "published_at": datetime.now(UTC),
                    },
                ],
            )
            await s.execute(
                insert(p.inbox),
                [
                    {"consumer": "assignment", "event_id": "old", "processed_at": LONG_AGO},
                    {
                        "consumer": "assignment",
                        "event_id": "new",
                        "processed_at": datetime.now(UTC),
                    },
                ],
            )
            await s.execute(
                insert(p.dead_letters),
                [
                    {**dead, "status": "dead", "stream_seq": 1, "created_at": LONG_AGO},
                    {**dead, "status": "waiting", "stream_seq": 2, "created_at": LONG_AGO},
                    {**dead, "status": "dead", "stream_seq": 3, "created_at": datetime.now(UTC)},
                ],
            )
            await s.commit()

        removed = await Housekeeping(rt.sessions, p, settings).prune_once()

        assert removed == {"outbox": 1, "inbox": 1, "dead_letters": 1}
        async with rt.sessions() as s:
            outbox = set(await s.scalars(select(p.outbox.c.event_id)))
            inbox = set(await s.scalars(select(p.inbox.c.event_id)))
            letters = await s.scalar(select(func.count()).select_from(p.dead_letters))
        assert outbox == {"old-unsent", "new-sent"}  # never an unsent row
        assert inbox == {"new"}
        assert letters == 2  # the waiting one is never pruned
    finally:
        await rt.engine.dispose()


async def test_ingress_outcomes_older_than_the_outcomes_stream_are_forgotten(
    settings: Settings,
) -> None:
    from minqing.services.intake.store import ingress_outcomes
    from minqing.services.intake.store import plumbing as intake_plumbing
    from minqing.shared.ingress import outcomes

    rt = build_runtime("intake", settings, intake_plumbing)
    now = datetime.now(UTC)
    rows = [
        {
            "source": "grid_center",
            "ingress_id": name,
            "accepted": True,
            "outcome": {},
            "updated_at": at,
        }
        for name, at in (("old", now - timedelta(days=8)), ("recent", now - timedelta(days=6)))
    ]
    try:
        async with rt.sessions() as s:
            await s.execute(insert(ingress_outcomes), rows)
            before = now - timedelta(days=settings.outcomes_max_age_days)
            pruned = await outcomes.prune(s, ingress_outcomes, before)
            await s.commit()
            left = (await s.scalars(select(ingress_outcomes.c.ingress_id))).all()
    finally:
        await rt.engine.dispose()

    assert (pruned, left) == (1, ["recent"])
