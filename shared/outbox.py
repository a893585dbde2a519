"""Transactional outbox: events are stored with the state change, then relayed to JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Sessions
from shared.envelope import Envelope

log = logging.getLogger(__name__)

# Publishes (subject, payload, message id) and returns the stream sequence it got.
Publish = Callable[[str, bytes, str], Awaitable[int]]


def subject_for(prefix: str, envelope: Envelope) -> str:
    """``minqing.events.issue.reported`` for type ``minqing.issue.reported``."""
    return f"{prefix}.{envelope.short_type}"


async def add_events(
    session: AsyncSession, outbox: Table, prefix: str, envelopes: Sequence[Envelope]
) -> None:
    """Queue events for publishing, inside the caller's transaction."""
    if not envelopes:
        return
    await session.execute(
        insert(outbox),
        [
            {"event_id": e.id, "subject": subject_for(prefix, e), "payload": e.to_json().decode()}
            for e in envelopes
        ],
    )


class Relay:
    """Publishes unpublished outbox rows in id order and marks them sent.

    Rows are locked with ``FOR UPDATE SKIP LOCKED`` so replicas share the work; a crash
    before marking means the row is published again with the same ``Nats-Msg-Id``, which
    the stream's duplicate window and every consumer's inbox absorb.
    """

    def __init__(
        self,
        sessions: Sessions,
        outbox: Table,
        publish: Publish,
        *,
        batch_size: int,
        poll_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._publish = publish
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()

    def notify(self) -> None:
        """New rows were committed: publish now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until cancelled; failures are logged and retried at the next poll."""
        while True:
            try:
                while await self.relay_once() == self._batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
            await self._sleep()

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were sent."""
        o = self._outbox
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(o.c.id, o.c.event_id, o.c.subject, o.c.payload)
                    .where(o.c.published_at.is_(None))
                    .order_by(o.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            sent = []
            for row in rows:
                seq = await self._publish(row.subject, row.payload.encode(), row.event_id)
                sent.append({"row_id": row.id, "seq": seq})
            await session.execute(
                update(o)
                .where(o.c.id == bindparam("row_id"))
                .values(published_at=datetime.now(UTC), stream_seq=bindparam("seq")),
                sent,
            )
        return len(rows)

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._poll_seconds):
                await self._wakeup.wait()
        self._wakeup.clear()
