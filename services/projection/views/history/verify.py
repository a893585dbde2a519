"""Reading the sealed audit trail back: its head as a checkpoint, and a full verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_

from minqing.services.projection.views.history import events
from minqing.services.projection.views.history.seal import (
    CANONICAL_FIELDS,
    Checkpoint,
    IssueVerifier,
    LogVerifier,
    Problem,
)
from minqing.shared.persistence.db import Sessions

CHUNK = 5000
_COLUMNS = [
    events.c[name]
    for name in (*CANONICAL_FIELDS, "prev_hash", "hash", "issue_prev_hash", "issue_hash")
]


@dataclass(frozen=True)
class Verification:
    """What a verification found: the entries checked, the head, and the first problem."""

    ok: bool
    entries: int
    head_log_seq: int
    head_hash: str | None
    problem: Problem | None
    checkpoint: Checkpoint | None


async def checkpoint(sessions: Sessions, now: datetime) -> Checkpoint:
    """The log's head at ``now``: post it outside the database to catch a later rewrite."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(events.c.log_seq, events.c.hash).order_by(events.c.log_seq.desc()).limit(1)
            )
        ).first()
        count = int(await session.scalar(select(func.count()).select_from(events)) or 0)
    if row is None:
        return Checkpoint(log_seq=0, hash="0" * 64, count=0, time=now)
    return Checkpoint(log_seq=int(row.log_seq), hash=str(row.hash), count=count, time=now)


async def verify(sessions: Sessions, against: Checkpoint | None = None) -> Verification:
    """Recompute the whole log's chain, then each matter's, and name the first entry that
    was changed, deleted or inserted (or a rewrite a checkpoint reveals)."""
    log = LogVerifier(against)
    last: dict[str, Any] | None = None
    async with sessions() as session:
        after = 0
        while True:
            query = select(*_COLUMNS).where(events.c.log_seq > after).order_by(events.c.log_seq)
            rows = [r._asdict() for r in await session.execute(query.limit(CHUNK))]
            for row in rows:
                if not log.feed(row):
                    break
                last = row
            if len(rows) < CHUNK or log.problem is not None:
                break
            after = int(rows[-1]["log_seq"])
        problem = log.finish()
        if problem is None:
            problem = await _verify_matters(session)
    return Verification(
        ok=problem is None,
        entries=log.count,
        head_log_seq=int(last["log_seq"]) if last else 0,
        head_hash=str(last["hash"]) if last else None,
        problem=problem,
        checkpoint=against,
    )


async def _verify_matters(session: Any) -> Problem | None:
    matters = IssueVerifier()
    position = ("", 0)
    key = tuple_(events.c.issue_id, events.c.log_seq)
    while True:
        query = (
            select(*_COLUMNS)
            .where(key > tuple_(*position))
            .order_by(events.c.issue_id, events.c.log_seq)
            .limit(CHUNK)
        )
        rows = [r._asdict() for r in await session.execute(query)]
        for row in rows:
            if not matters.feed(row):
                return matters.problem
        if len(rows) < CHUNK:
            return None
        position = (rows[-1]["issue_id"], rows[-1]["log_seq"])
