"""Check-then-insert races settled by a unique constraint: the first insert wins, every
other caller answers as the winner did.

Two requests under one key both look for an earlier row, both find none (neither has
committed yet), and both insert: PostgreSQL lets one through and refuses the other with a
unique violation. The loser's transaction is then dead, so its answer (the winner's row, or
a refusal) has to be found in a new one. The violation arrives in two shapes: SQLAlchemy's
``IntegrityError`` from statements it runs, and asyncpg's own ``UniqueViolationError`` from
statements run straight on the driver (``minqing.shared.persistence.bulk``), which no
``except IntegrityError`` catches; this module recognises both, by the constraint's name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]

T = TypeVar("T")


def violated_unique(exc: BaseException) -> str | None:
    """The unique constraint ``exc`` says was violated, however it was wrapped; or None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncpg.UniqueViolationError):
            name = seen.constraint_name
            return name if isinstance(name, str) else None
        seen = seen.__cause__  # SQLAlchemy's error, from its adapter's, from asyncpg's
    return None


async def first_wins(
    attempt: Callable[[], Awaitable[T]],
    *,
    constraints: Collection[str],
    then: Callable[[], Awaitable[T | None]],
) -> T:
    """``attempt()``; if it loses a race on one of ``constraints``, ``then()``: the winner's
    answer, looked up anew (or an exception saying it was taken). ``attempt`` runs in a unit
    of work of its own, rolled back as the violation leaves it; when ``then`` finds nothing
    (None), the violation stands. Any other error passes through untouched."""
    try:
        return await attempt()
    except Exception as exc:
        if violated_unique(exc) not in constraints:
            raise
        if (answer := await then()) is None:
            raise
        return answer
