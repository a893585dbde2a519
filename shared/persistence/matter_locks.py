"""Per-matter locks, so two replicas (or a replica's consumer and a request) never change
one matter at once.

A row lock (``SELECT ... FOR UPDATE``) guards a matter's row only once the row exists: two
transactions that each find no row for a new matter (one applying ``issue.reported``, a
replica ``issue.assigned``) would both write one, and the later write would undo the
earlier. A transaction-scoped advisory lock on (schema, matter) is taken whether or not the
row exists: the second transaction waits for the first to commit, and its next statement
(a new snapshot under READ COMMITTED) reads what the first wrote. The locks of one
transaction are taken in one statement in key order, so two transactions never wait for
each other in a circle; they are released at commit or rollback.

Matters share ``BUCKETS`` locks per schema (a matter's lock is its bucket's): an advisory
lock takes a slot of PostgreSQL's shared lock table (``max_locks_per_transaction`` times
the connections), and a batch of 500 new matters must not take 500 of them. Two
transactions on different matters of one bucket wait for each other: a little less
parallelism between replicas, never a wrong result.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

BUCKETS = 256


def locking(space: str, ids: str) -> str:
    """SQL that takes the locks of the matters in the text-array parameter ``ids`` in the
    schema named by the text parameter ``space``, in key order, one row per lock."""
    return (
        f"select pg_advisory_xact_lock(hashtext({space}), key) from "
        f"(select distinct hashtext(m) & {BUCKETS - 1} as key "
        f"from unnest(cast({ids} as text[])) as m order by key) as keys"
    )


_LOCK = text(locking(":space", ":ids"))


async def lock_matters(session: AsyncSession, space: str, issue_ids: Iterable[str]) -> None:
    """Wait for, then hold until the transaction ends, the locks of these matters in
    ``space`` (a service's schema: each service's state is its own)."""
    ids = list(dict.fromkeys(issue_ids))
    if ids:
        await session.execute(_LOCK, {"space": space, "ids": ids})
