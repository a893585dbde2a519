"""Batch consumption with an inbox: at-least-once delivery, exactly-once effects.

A batch of JetStream messages is applied in one transaction together with the inbox rows
of the event ids it processed; only after the commit are the messages acknowledged. A
batch that fails is retried one message per transaction, so one bad message cannot hold
back the others; a message that keeps failing is dead-lettered with the reason after
``max_deliver`` attempts. Unreadable messages are dead-lettered at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Sessions
from shared.envelope import Envelope, UnreadableEvent, parse
from shared.tables import Plumbing

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A permanent reason this event cannot be applied; it is dead-lettered, not retried."""


class RawMessage(Protocol):
    """The parts of a ``nats.aio.msg.Msg`` the consumer uses."""

    subject: str
    data: bytes

    @property
    def metadata(self) -> _Metadata: ...

    async def ack(self) -> None: ...

    async def nak(self, delay: float | None = None) -> None: ...

    async def term(self) -> None: ...


class _Sequence(Protocol):
    @property
    def stream(self) -> int: ...


class _Metadata(Protocol):
    @property
    def sequence(self) -> _Sequence: ...

    @property
    def num_delivered(self) -> int: ...


@dataclass(frozen=True)
class Delivery:
    """One readable event as delivered: its envelope and its position in the stream."""

    envelope: Envelope
    subject: str
    position: int
    deliveries: int


# Applies fresh deliveries in one transaction; returns {event id: reason} for rejected ones.
ApplyBatch = Callable[[AsyncSession, Sequence[Delivery]], Awaitable[Mapping[str, str]]]


async def apply_each(
    session: AsyncSession,
    deliveries: Sequence[Delivery],
    apply_one: Callable[[AsyncSession, Delivery], Awaitable[None]],
) -> dict[str, str]:
    """Apply deliveries one after another; ``Rejected``/``UnreadableEvent`` become reasons."""
    rejected: dict[str, str] = {}
    for delivery in deliveries:
        try:
            await apply_one(session, delivery)
        except (Rejected, UnreadableEvent) as exc:
            rejected[delivery.envelope.id] = str(exc)
    return rejected


class BatchConsumer:
    def __init__(
        self,
        sessions: Sessions,
        plumbing: Plumbing,
        apply_batch: ApplyBatch,
        *,
        max_deliver: int,
        retry_delay: float = 1.0,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._plumbing = plumbing
        self._apply_batch = apply_batch
        self._max_deliver = max_deliver
        self._retry_delay = retry_delay
        self._after_commit = after_commit

    async def consume(self, messages: Sequence[RawMessage]) -> None:
        """Process one fetched batch; every message ends acked, terminated or nak'd."""
        try:
            await self._commit(messages)
        except Exception:
            log.exception("batch of %d failed; retrying one message at a time", len(messages))
            for message in messages:
                await self._consume_alone(message)
            return
        for message in messages:
            await message.ack()

    async def _consume_alone(self, message: RawMessage) -> None:
        try:
            await self._commit([message])
        except Exception as exc:
            await self._retry_or_dead_letter(message, exc)
            return
        await message.ack()

    async def _retry_or_dead_letter(self, message: RawMessage, exc: Exception) -> None:
        attempts = message.metadata.num_delivered
        if attempts < self._max_deliver:
            log.warning("message %s failed (attempt %d): %r", _where(message), attempts, exc)
            await message.nak(delay=min(self._retry_delay * 2 ** (attempts - 1), 60.0))
            return
        reason = f"failed {attempts} times; last error: {exc!r}"
        try:
            async with self._sessions() as session, session.begin():
                await self._dead_letter(session, message, reason, event_id=None)
        except Exception:
            log.exception("cannot dead-letter %s; it will be redelivered", _where(message))
            await message.nak(delay=60.0)
            return
        log.error("dead-lettered %s: %s", _where(message), reason)
        await message.term()

    async def _commit(self, messages: Sequence[RawMessage]) -> None:
        async with self._sessions() as session, session.begin():
            deliveries = await self._readable(session, messages)
            fresh = await self._unseen(session, deliveries)
            rejected = await self._apply_batch(session, fresh) if fresh else {}
            for delivery in fresh:
                reason = rejected.get(delivery.envelope.id)
                if reason is not None:
                    log.error("rejected %s: %s", delivery.envelope.id, reason)
                    await self._dead_letter_delivery(session, delivery, reason)
            if fresh:
                await session.execute(
                    insert(self._plumbing.inbox), [{"event_id": d.envelope.id} for d in fresh]
                )
        if fresh:
            self._after_commit()

    async def _readable(
        self, session: AsyncSession, messages: Sequence[RawMessage]
    ) -> list[Delivery]:
        deliveries = []
        for message in messages:
            try:
                envelope = parse(message.data)
            except UnreadableEvent as exc:
                log.error("unreadable message %s: %s", _where(message), exc)
                await self._dead_letter(session, message, str(exc), event_id=None)
                continue
            meta = message.metadata
            deliveries.append(
                Delivery(envelope, message.subject, meta.sequence.stream, meta.num_delivered)
            )
        return deliveries

    async def _unseen(
        self, session: AsyncSession, deliveries: Sequence[Delivery]
    ) -> list[Delivery]:
        """Drop deliveries whose event id was already processed (or repeats in this batch)."""
        ids = [d.envelope.id for d in deliveries]
        inbox = self._plumbing.inbox
        seen = set(await session.scalars(select(inbox.c.event_id).where(inbox.c.event_id.in_(ids))))
        fresh = []
        for delivery in deliveries:
            if delivery.envelope.id not in seen:
                seen.add(delivery.envelope.id)
                fresh.append(delivery)
        return fresh

    async def _dead_letter_delivery(
        self, session: AsyncSession, delivery: Delivery, reason: str
    ) -> None:
        await self._record(
            session,
            event_id=delivery.envelope.id,
            subject=delivery.subject,
            position=delivery.position,
            deliveries=delivery.deliveries,
            reason=reason,
            payload=delivery.envelope.to_json().decode(),
        )

    async def _dead_letter(
        self, session: AsyncSession, message: RawMessage, reason: str, event_id: str | None
    ) -> None:
        meta = message.metadata
        await self._record(
            session,
            event_id=event_id,
            subject=message.subject,
            position=meta.sequence.stream,
            deliveries=meta.num_delivered,
            reason=reason,
            payload=message.data.decode("utf-8", errors="replace"),
        )

    async def _record(
        self,
        session: AsyncSession,
        *,
        event_id: str | None,
        subject: str,
        position: int,
        deliveries: int,
        reason: str,
        payload: str,
    ) -> None:
        """Store a dead letter once per stream position, however often it is redelivered."""
        table = self._plumbing.dead_letters
        known = await session.scalar(
            select(table.c.id).where(table.c.stream_seq == position, table.c.subject == subject)
        )
        if known is None:
            await session.execute(
                insert(table).values(
                    event_id=event_id,
                    subject=subject,
                    stream_seq=position,
                    deliveries=deliveries,
                    reason=reason,
                    payload=payload,
                )
            )


def _where(message: RawMessage) -> str:
    return f"{message.subject}#{message.metadata.sequence.stream}"
