"""Transactional outbox: events are stored with the state change, then relayed to JetStream.

One relay per service publishes at a time (a session-level advisory lock; replicas wait on
standby), so events leave in the order they were committed. It reads a batch, publishes it
pipelined (every message carries ``Nats-Msg-Id`` = event id), waits for the stream's acks
in order and marks the acknowledged prefix sent. No transaction is held while publishing.
A crash before marking means the rows are published again with the same id: the stream's
duplicate window and every consumer's inbox absorb the copies.

A service that talks to systems outside the canonical stream (intake) has an outbox with
routing columns: a row may name its own stream, headers and raw body (an outcome, a dead
letter), and leaves in the same order, through the same relay, as the canonical events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from minqing.shared.contract.envelope import Envelope
from minqing.shared.messaging.faults import OutageLog
from minqing.shared.persistence.bulk import executemany
from minqing.shared.service import tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One row to publish; ``stream`` None is the canonical stream, ``headers`` None its
    CloudEvents content type."""

    row_id: int
    event_id: str
    subject: str
    payload: bytes
    stream: str | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Message:
    """A message for another stream than the canonical one, sent through the outbox."""

    message_id: str  # Nats-Msg-Id: the stream de-duplicates by it
    stream: str
    subject: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class PermanentPublishError(Exception):
    """This message can never be published (too large, bad subject); others go on."""


# Publishes a batch pipelined; returns one result per message, in order: the stream
# sequence, or the exception that message got.
PublishBatch = Callable[[Sequence[Outgoing]], Awaitable[list[int | BaseException]]]


class Outbox:
    """A service's outbox table, bound to its subject prefix and its relay's wake-up."""

    def __init__(
        self, table: Table, subject_prefix: str, wake: Callable[[], None] = lambda: None
    ) -> None:
        self.table = table
        self.subject_prefix = subject_prefix
        self.wake = wake
        self._added = False
        self._insert = (
            f"insert into {table.fullname} (event_id, subject, payload) values ($1, $2, $3)"
        )

    def wake_if_added(self) -> None:
        """After a commit: wake the relay only if rows were added since the last wake-up
        (a consumer that records nothing, like the projection, never wakes it)."""
        if self._added:
            self._added = False
            self.wake()

    def subject(self, envelope: Envelope) -> str:
        """``minqing.events.issue.reported`` for type ``minqing.issue.reported``."""
        return f"{self.subject_prefix}.{envelope.short_type}"

    async def add(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        """Queue events for publishing, inside the caller's transaction."""
        if envelopes:
            with tracing.outbox_write(envelopes, str(self.table.schema)) as written:
                rows = [(e.id, self.subject(e), e.to_json().decode()) for e in written]
                await executemany(session, self._insert, rows)
            self._added = True

    async def send(self, session: AsyncSession, messages: Sequence[Message]) -> None:
        """Queue messages for other streams, inside the caller's transaction (only an outbox
        with routing columns, ``plumbing_tables(external=True)``, takes them)."""
        if not messages:
            return
        if "body" not in self.table.c:
            raise TypeError(f"{self.table.fullname} has no routing columns")
        rows = [
            (m.message_id, m.subject, "", m.stream, json.dumps(dict(m.headers)), m.body)
            for m in messages
        ]
        await executemany(session, self._insert_routed, rows)
        self._added = True

    @property
    def _insert_routed(self) -> str:
        return (
            f"insert into {self.table.fullname} (event_id, subject, payload, stream, headers, "
            "body) values ($1, $2, $3, $4, cast($5 as jsonb), $6) "
            "on conflict (event_id) do nothing"  # the same message queued again: once is enough
        )


class Relay:
    """Publishes unpublished outbox rows in id order and marks them sent."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Table,
        publish: PublishBatch,
        *,
        batch_size: int,
        poll_seconds: float,
        published: Callable[[Sequence[Outgoing]], None] = lambda sent: None,
    ) -> None:
        self._engine = engine
        self._published = published
        self._outbox = outbox
        self._publish = tracing.publishing(publish, str(outbox.schema))
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._lock_key = zlib.crc32(f"minqing-relay:{outbox.fullname}".encode())
        self._outage = OutageLog(log, "outbox relay")

    def notify(self) -> None:
        """New rows were committed: publish now rather than at the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        """Shutting down: the relay holding the lock publishes what is committed, releases
        the lock (a standby replica takes over at its next poll) and ``run`` returns; a
        standby returns at once. A failure on the way leaves the rest for the next relay."""
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until stopped (or cancelled); transient failures are logged once per outage
        and retried."""
        while not self._stopping:
            try:
                async with self._engine.connect() as conn:
                    await _autocommit(conn)
                    if await self._lock(conn):
                        await self._drain_forever(conn)
                        await self._unlock(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._outage.failed(exc)
            if not self._stopping:
                await self._sleep()

    async def _lock(self, conn: AsyncConnection) -> bool:
        locked = await conn.scalar(text("select pg_try_advisory_lock(:k)"), {"k": self._lock_key})
        await conn.commit()
        return bool(locked)

    async def _unlock(self, conn: AsyncConnection) -> None:
        await conn.execute(text("select pg_advisory_unlock(:k)"), {"k": self._lock_key})
        await conn.commit()

    async def _drain_forever(self, conn: AsyncConnection) -> None:
        """Publish until the outbox is empty, then wait to be woken; when stopping, return
        once what was committed before has been published."""
        while True:
            while await self._relay_batch(conn) == self._batch_size:
                pass
            self._outage.recovered()
            if self._stopping:
                return
            await self._sleep()

    async def relay_once(self) -> int:
        """Publish one batch (for tests and tools); returns how many rows were sent."""
        async with self._engine.connect() as conn:
            await _autocommit(conn)
            return await self._relay_batch(conn)

    async def _relay_batch(self, conn: AsyncConnection) -> int:
        o = self._outbox
        routed = "body" in o.c
        columns = [o.c.id, o.c.event_id, o.c.subject, o.c.payload]
        if routed:
            columns += [o.c.stream, o.c.headers, o.c.body]
        rows = (
            await conn.execute(
                select(*columns)
                .where(o.c.published_at.is_(None), o.c.failed_reason.is_(None))
                .order_by(o.c.id)
                .limit(self._batch_size)
            )
        ).all()
        await conn.commit()
        if not rows:
            return 0
        batch = [_outgoing(r, routed) for r in rows]
        results = await self._publish(batch)
        sent: list[dict[str, object]] = []
        failed: list[dict[str, object]] = []
        delivered: list[Outgoing] = []
        for message, result in zip(batch, results, strict=True):
            if isinstance(result, PermanentPublishError):
                log.error("outbox row %s can never be published: %s", message.event_id, result)
                failed.append({"row_id": message.row_id, "reason": str(result)})
            elif isinstance(result, BaseException):
                self._outage.failed(result)
                break  # nothing after a failure is marked: it is retried in order
            else:
                sent.append({"row_id": message.row_id, "seq": result})
                delivered.append(message)
        await self._mark(conn, sent, failed)
        self._published(delivered)
        return len(sent)

    async def _mark(
        self, conn: AsyncConnection, sent: list[dict[str, object]], failed: list[dict[str, object]]
    ) -> None:
        o = self._outbox
        if sent:
            await conn.execute(
                update(o)
                .where(o.c.id == bindparam("row_id"))
                .values(published_at=func.now(), stream_seq=bindparam("seq")),
                sent,
            )
        if failed:
            await conn.execute(
                update(o)
                .where(o.c.id == bindparam("row_id"))
                .values(failed_reason=bindparam("reason")),
                failed,
            )
        await conn.commit()

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._poll_seconds):
                await self._wakeup.wait()
        self._wakeup.clear()


async def _autocommit(conn: AsyncConnection) -> None:
    """Each of the relay's statements stands alone (a read of the unpublished rows, the
    marks of what was published; the relay's lock is the session's): no BEGIN and COMMIT
    around each, two round trips fewer per statement (measured in the closed loop: the
    relays made a fifth of the services' round trips to PostgreSQL)."""
    await conn.execution_options(isolation_level="AUTOCOMMIT")


def _outgoing(row: Any, routed: bool) -> Outgoing:
    if routed and row.stream is not None:
        body = row.body if row.body is not None else row.payload.encode()
        return Outgoing(row.id, row.event_id, row.subject, body, row.stream, row.headers)
    return Outgoing(row.id, row.event_id, row.subject, row.payload.encode())
