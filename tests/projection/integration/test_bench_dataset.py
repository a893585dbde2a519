"""The benchmark's dataset (bench/dataset.py) loads by COPY exactly the rows the consumers
write for the same events: the read-side figures are measured on honest data."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench import dataset
from bench.stack import asyncpg_dsn
from minqing.services.projection.views import history, issues
from minqing.shared.messaging.consumer import Delivery
from minqing.shared.persistence.db import make_engine, make_sessions
from minqing.shared.service.settings import Settings
from tests.support.harness import fresh_database

MATTERS = 200
BATCH = 50
# Every column of the rows but when they were recorded.
TABLES = {
    "events": ("log_seq", [c.name for c in history.events.c]),
    "issues": ("issue_id", [c.name for c in issues.issues.c]),
    "issue_versions": ("issue_id, event_count", [c.name for c in issues.issue_versions.c]),
    "issue_events": ("event_id", [c.name for c in issues.issue_events.c]),
}


async def _through_consumers(url: str, stream: list[Delivery]) -> None:
    engine = make_engine(url, Settings(database_url=url))
    sessions = make_sessions(engine)
    try:
        for start in range(0, len(stream), BATCH):
            batch = stream[start : start + BATCH]
            for view in (history, issues):
                async with sessions() as session:
                    assert await view.apply_batch(session, batch) == {}
                    await session.commit()
    finally:
        await engine.dispose()


async def _contents(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(**asyncpg_dsn(url))
    try:
        found: dict[str, Any] = {}
        for table, (order, columns) in TABLES.items():
            names = ", ".join(f'"{c}"' for c in columns)
            rows = await conn.fetch(f"select {names} from projection.{table} order by {order}")
            found[table] = [tuple(r) for r in rows]
        found["indexes"] = sorted(
            (r["tablename"], r["indexdef"])
            for r in await conn.fetch(
                "select tablename, indexdef from pg_indexes where schemaname = 'projection'"
            )
        )
        return found
    finally:
        await conn.close()


async def test_bulk_load_writes_what_the_consumers_write(
    server_db_url: str, template_db: str, database_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    stream = list(dataset.deliveries(MATTERS, now, seed=7))
    assert [d.position for d, _ in stream] == list(range(1, len(stream) + 1))
    assert sum(last for _, last in stream) == MATTERS
    types = Counter(d.envelope.short_type for d, _ in stream)
    for kind in ("reported", "assigned", "resolved", "lookback_passed", "lookback_failed"):
        assert types[f"issue.{kind}"] > 0, kind
    for kind in ("overdue", "escalated", "feedback_recorded", "funding_recorded"):
        assert types[f"issue.{kind}"] > 0, kind
    assert all(d.envelope.time <= now for d, _ in stream)

    await _through_consumers(database_url, [d for d, _ in stream])
    async with fresh_database(server_db_url, template_db) as bulk_url:
        counts = await dataset.load(bulk_url, stream, MATTERS)
        bulk = await _contents(bulk_url)
    consumed = await _contents(database_url)

    assert counts["events"] == len(stream) == len(consumed["events"])
    assert counts["issues"] == MATTERS == len(consumed["issues"])
    assert len(consumed["issue_versions"]) > MATTERS
    statuses = Counter(row[1] for row in consumed["issues"])
    assert {"reported", "assigned", "resolved", "closed"} <= set(statuses), statuses
    for table in (*TABLES, "indexes"):
        assert bulk[table] == consumed[table], table
