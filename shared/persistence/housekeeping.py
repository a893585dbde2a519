"""Pruning: the plumbing tables would otherwise grow without bound.

Published outbox rows and inbox rows are kept ``MINQING_RETENTION_DAYS`` (default 30):
far longer than the stream's duplicate window and any redelivery, so a copy of an event
still meets its inbox row; past that, each handler's own idempotency (state checks) holds.
Dead letters are kept ``MINQING_DEAD_LETTER_RETENTION_DAYS`` (default 90); ones waiting for
a newer consumer are never pruned.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import delete, func, text

from minqing.shared.messaging.faults import OutageLog
from minqing.shared.persistence.db import Sessions
from minqing.shared.persistence.tables import Plumbing
from minqing.shared.service.settings import Settings

log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(self, sessions: Sessions, plumbing: Plumbing, settings: Settings) -> None:
        self._sessions = sessions
        self._plumbing = plumbing
        self._keep = timedelta(days=settings.retention_days)
        self._keep_dead = timedelta(days=settings.dead_letter_retention_days)
        self._every = settings.prune_interval_seconds
        self._outage = OutageLog(log, "pruning")

    async def run(self) -> None:
        """Prune now and then every ``prune_interval_seconds``."""
        while True:
            try:
                removed = await self.prune_once()
                self._outage.recovered()
                if any(removed.values()):
                    log.info("pruned %s", removed)
            except Exception as exc:
                self._outage.failed(exc)
            await asyncio.sleep(self._every)

    async def prune_once(self) -> dict[str, int]:
        p = self._plumbing
        now = func.now()
        statements = {
            "outbox": delete(p.outbox).where(p.outbox.c.published_at < now - self._keep),
            "inbox": delete(p.inbox).where(p.inbox.c.processed_at < now - self._keep),
            "dead_letters": delete(p.dead_letters).where(
                p.dead_letters.c.status.in_(("dead", "resubmitted")),
                p.dead_letters.c.created_at < now - self._keep_dead,
            ),
        }
        removed = {}
        async with self._sessions() as session:
            # A first prune after a long time can be big: allow it more than a request.
            await session.execute(text("set local statement_timeout = '10min'"))
            for name, statement in statements.items():
                result = await session.execute(statement)
                removed[name] = int(getattr(result, "rowcount", 0) or 0)
            await session.commit()
        return removed
