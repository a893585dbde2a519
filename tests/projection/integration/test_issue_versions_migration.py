"""The migration that adds every matter's earlier states folds them for matters recorded
before it, so ``as_of`` answers about the past right after an upgrade."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from minqing.services.projection.views.issues import issue_versions
from minqing.services.projection.views.issues.fold import Recorded, fold_versions
from minqing.shared.domain.ids import new_id
from minqing.shared.persistence.db import make_engine
from minqing.shared.persistence.migrations import upgrade
from minqing.shared.service.infra import ensure_database
from minqing.shared.service.settings import Settings
from tests.support.events import assigned, reported
from tests.support.harness import drop_database, with_database


async def test_states_of_matters_recorded_before_are_folded_by_the_migration(
    server_db_url: str,
) -> None:
    url = with_database(server_db_url, f"mq_versions_{new_id().lower()}")
    await asyncio.to_thread(ensure_database, url)
    engine = make_engine(url, Settings(database_url=url))
    first, second = new_id(), new_id()
    timeline = [
        reported(first),
        reported(second),
        assigned(first),
        assigned(first, unit="water_station", number=2),
    ]
    timeline = [
        e.model_copy(update={"time": e.time + timedelta(hours=n)}) for n, e in enumerate(timeline)
    ]
    try:
        await asyncio.to_thread(upgrade, url, "projection", "projection_0007")
        async with engine.begin() as conn:  # the audit table as it was at that revision
            for n, e in enumerate(timeline, start=1):
                await conn.execute(
                    text(
                        "insert into projection.events (event_id, stream_epoch, stream_seq, "
                        "issue_id, type, time, actor, source, dataversion, correlationid, data, "
                        "envelope, log_seq, prev_hash, hash, issue_prev_hash, issue_hash) "
                        "values (:id, 1, :n, :issue, :type, :time, :actor, :source, :version, "
                        ":correlation, cast(:data as jsonb), cast(:envelope as jsonb), :n, "
                        "'', '', '', '')"
                    ),
                    {
                        "id": e.id,
                        "n": n,
                        "issue": e.subject,
                        "type": e.type,
                        "time": e.time,
                        "actor": e.actor,
                        "source": e.source,
                        "version": e.dataversion,
                        "correlation": e.correlationid,
                        "data": json.dumps(e.data),
                        "envelope": e.to_json().decode(),
                    },
                )
        await asyncio.to_thread(upgrade, url, "projection", "head")
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(issue_versions).order_by(
                    issue_versions.c.issue_id, issue_versions.c.event_count
                )
            )
            stored = [(r.issue_id, r.status, r.unit, r.event_count, r.valid_to) for r in rows]
            folded = await conn.execute(  # the list's own record, filled from the trail
                text("select event_id, issue_id, epoch, seq, type from projection.issue_events")
            )
            own = sorted(tuple(r) for r in folded)
    finally:
        await engine.dispose()
        await drop_database(server_db_url, make_url(url).database or "")

    records = [
        Recorded(n, e.type, e.dataversion, e.time, e.data, 1, e.id)
        for n, e in enumerate(timeline, start=1)
    ]
    _, versions = fold_versions(
        first, [r for r, e in zip(records, timeline, strict=True) if e.subject == first]
    )
    assert stored == [(first, v.status, v.unit, v.event_count, until) for v, until in versions]
    assert [s[1:3] for s in stored] == [("reported", None), ("assigned", "town_construction")]
    assert own == sorted((e.id, e.subject, 1, n, e.type) for n, e in enumerate(timeline, start=1))
