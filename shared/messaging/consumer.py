"""Batch consumption with an inbox: at-least-once delivery, exactly-once effects.

A fetched batch is parsed once, then applied in one transaction together with the inbox
rows of the events it processed, its dead letters and the consumer's position; only after
the commit are the messages acknowledged. Every message ends one of four ways:

- applied (acked);
- dead-lettered with its raw bytes and a reason (terminated): unreadable, breaks a rule,
  or failed ``max_deliver`` times *for its own sake*;
- waiting for a newer consumer (a newer ``dataversion``): nak'd with back-off, listed;
- retried: while the database is down, no attempt counts against the message.

An **ordered** consumer (``ordered=True``; the audit trail's, which seals events in stream
order) keeps an exact position instead of relying on redelivery: its reader hands over
batches in stream order with the sequence read before each (``after``), and each
transaction, under a lock of its own, checks that the committed position is not behind
``after`` (else ``ReadAgain``: someone's batch before this one is missing), skips what is at
or before the position, and writes the new position with the effects. Nothing is acked
or redelivered: a batch that does not commit is read again from the position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.contract.envelope import Envelope, NewerVersion, UnreadableEvent, parse
from minqing.shared.messaging.dead_letters import DeadLetter, DeadLetterSink, TableDeadLetters
from minqing.shared.messaging.faults import OutageLog, is_transient
from minqing.shared.persistence.db import Sessions, reachable
from minqing.shared.persistence.matter_locks import locking
from minqing.shared.persistence.tables import Plumbing
from minqing.shared.service import tracing

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60.0
POSITION_EVERY_SECONDS = 1.0
OUTAGE_RETRY_SECONDS = 2.0


class ReadAgain(Exception):
    """An ordered consumer must read again from its last committed position."""


class Rejected(Exception):
    """A permanent reason this event cannot be applied; it is dead-lettered, not retried."""


class RawMessage(Protocol):
    """The parts of a ``nats.aio.msg.Msg`` the consumer uses."""

    subject: str
    data: bytes
    headers: dict[str, str] | None

    @property
    def metadata(self) -> _Metadata: ...

    async def ack(self) -> None: ...

    async def nak(self, delay: float | None = None) -> None: ...

    async def term(self) -> None: ...


class _Sequence(Protocol):
    @property
    def stream(self) -> int: ...

    @property
    def consumer(self) -> int: ...


class _Metadata(Protocol):
    @property
    def sequence(self) -> _Sequence: ...

    @property
    def num_delivered(self) -> int: ...

    @property
    def stream(self) -> str: ...


@dataclass(frozen=True)
class Delivery:
    """One readable event as delivered: its envelope and where it sits in which stream."""

    envelope: Envelope
    subject: str
    epoch: int
    position: int
    deliveries: int
    raw: bytes = b""  # the message body as received (the envelope's JSON for canonical events)
    headers: Mapping[str, str] = field(default_factory=dict)  # the message's headers


@dataclass(frozen=True)
class Outcome:
    """Why an event was not applied: ``waiting`` for a newer consumer, else dead; ``code``
    is a machine-readable reason, when the consumer has one."""

    reason: str
    waiting: bool = False
    code: str | None = None


# Applies fresh deliveries in one transaction; returns {event id: outcome} for the others.
ApplyBatch = Callable[[AsyncSession, Sequence[Delivery]], Awaitable[Mapping[str, Outcome]]]
# Turns a raw message into the canonical envelope, or raises UnreadableEvent.
Parser = Callable[[RawMessage], Envelope]


def parse_message(message: RawMessage) -> Envelope:
    """The canonical parser: a structured-mode CloudEvent in the body."""
    return parse(message.data)


def outcome_of(exc: Exception) -> Outcome | None:
    """The outcome for a rule-breaking or unreadable event; ``None`` for other errors."""
    if isinstance(exc, NewerVersion):
        return Outcome(str(exc), waiting=True)
    if isinstance(exc, Rejected | UnreadableEvent):
        return Outcome(str(exc))
    return None


@dataclass(eq=False)  # compared by identity: two redelivered copies are two items
class _Item:
    message: RawMessage
    epoch: int
    delivery: Delivery | None = None
    unreadable: str | None = None  # why it cannot be parsed: decided once
    unreadable_code: str | None = None
    reason: str | None = None  # why it was not applied in the latest attempt
    code: str | None = None  # the reason's machine-readable code, if any

    @property
    def position(self) -> int:
        return self.message.metadata.sequence.stream


@dataclass
class _Result:
    acked: list[_Item] = field(default_factory=list)
    dead: list[_Item] = field(default_factory=list)
    waiting: list[_Item] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # the types of the events applied


class BatchConsumer:
    """Applies batches for one durable consumer (``name``) in one service's schema."""

    def __init__(
        self,
        name: str,
        sessions: Sessions,
        plumbing: Plumbing,
        apply_batch: ApplyBatch,
        *,
        parser: Parser = parse_message,
        dead_letters: DeadLetterSink | None = None,
        max_deliver: int,
        retry_delay: float = 1.0,
        after_commit: Callable[[], None] = lambda: None,
        ordered: bool = False,
        observe: Callable[[str, list[str], float], None] = lambda name, types, seconds: None,
        redelivered: Callable[[str, int], None] = lambda name, count: None,
    ) -> None:
        self.name = name
        self._observe = observe
        self._redelivered = redelivered
        self.ordered = ordered
        self._sessions = sessions
        self._plumbing = plumbing
        self._apply_batch = tracing.consuming(name, apply_batch)
        self._parser = parser
        self._dead_letters = dead_letters or TableDeadLetters(plumbing)
        self._max_deliver = max_deliver
        self._retry_delay = retry_delay
        self._after_commit = after_commit
        self._failures: dict[tuple[int, int], int] = {}
        self._position_written = 0.0
        self._outage = OutageLog(log, f"consumer {name}")
        self._sql = _Statements(plumbing)
        self._space = plumbing.inbox.schema or plumbing.inbox.name

    async def consume(
        self, messages: Sequence[RawMessage], epoch: int, after: int | None = None
    ) -> bool:
        """Process one fetched batch; False if the database was down (the caller backs off).
        An ordered consumer is told the sequence its reader read before this batch
        (``after``) and raises ``ReadAgain`` when it must read again from its position."""
        items = [self._parse(message, epoch) for message in messages]
        again = sum(1 for message in messages if message.metadata.num_delivered > 1)
        if again:
            self._redelivered(self.name, again)
        started = time.perf_counter()
        try:
            result = await self._commit(items, after)
        except ReadAgain:
            raise
        except Exception as exc:
            if await self._outage_explains(exc):
                await _nak_all(items, OUTAGE_RETRY_SECONDS)
                return False
            log.warning("%s: batch of %d failed (%r); one at a time", self.name, len(items), exc)
            for item in items:
                if not await self._consume_alone(item, after):
                    return False
                after = item.position
            return True
        self._outage.recovered()
        self._observe(self.name, result.applied, time.perf_counter() - started)
        await self._settle(result)
        return True

    def _parse(self, message: RawMessage, epoch: int) -> _Item:
        item = _Item(message, epoch)
        try:
            envelope = self._parser(message)
        except UnreadableEvent as exc:
            item.unreadable = str(exc)
            item.unreadable_code = getattr(exc, "code", None)
            return item
        meta = message.metadata
        item.delivery = Delivery(
            envelope,
            message.subject,
            epoch,
            meta.sequence.stream,
            meta.num_delivered,
            bytes(message.data),
            dict(message.headers or {}),
        )
        return item

    async def _consume_alone(self, item: _Item, after: int | None) -> bool:
        try:
            result = await self._commit([item], after)
        except ReadAgain:
            raise
        except Exception as exc:
            if await self._outage_explains(exc):
                await _nak_all([item], OUTAGE_RETRY_SECONDS)
                return False
            await self._own_fault(item, exc)
            return True
        await self._settle(result)
        return True

    async def _outage_explains(self, exc: Exception) -> bool:
        """A failure is the infrastructure's if it looks like one and the database is down."""
        if not is_transient(exc):
            return False
        try:
            await reachable(self._sessions)
        except Exception:
            self._outage.failed(exc)
            return True
        return False

    async def _own_fault(self, item: _Item, exc: Exception) -> None:
        key = (item.epoch, item.position)
        attempts = self._failures.get(key, 0) + 1
        self._failures[key] = attempts
        where = f"{item.message.subject}#{item.position}"
        if attempts < self._max_deliver:
            log.warning("%s: %s failed (attempt %d): %r", self.name, where, attempts, exc)
            await item.message.nak(delay=self._backoff(attempts))
            if self.ordered:  # nothing is redelivered: back off, read again from the position
                await asyncio.sleep(self._backoff(attempts))
                raise ReadAgain(f"{where} failed; reading again from the position")
            return
        item.reason = f"failed {attempts} times; last error: {exc!r}"
        try:
            async with self._sessions() as session:
                await self._dead_letter(session, [item], "dead")
                if self.ordered:
                    await self._write_position(session, item.epoch, item.position)
                await session.commit()
        except Exception:
            log.exception("%s: cannot dead-letter %s; it will be redelivered", self.name, where)
            await item.message.nak(delay=MAX_BACKOFF_SECONDS)
            return
        self._after_commit()
        log.error("%s: dead-lettered %s: %s", self.name, where, item.reason)
        self._failures.pop(key, None)
        await item.message.term()

    def _backoff(self, attempts: int) -> float:
        return min(float(self._retry_delay * 2 ** (attempts - 1)), MAX_BACKOFF_SECONDS)

    async def _commit(self, items: Sequence[_Item], after: int | None = None) -> _Result:
        result = _Result()
        for item in items:
            item.reason, item.code = item.unreadable, item.unreadable_code
        async with self._sessions() as session:
            if self.ordered:
                done_before = await self._in_order(session, items, after)
                result.acked.extend(done_before)
                items = [i for i in items if i not in done_before]
                if not items:
                    return result
            readable = [i for i in items if i.delivery is not None]
            # a replica's batch may hold events of the same matters: an unordered consumer
            # takes its matters' locks with the claim (the ordered one reads alone)
            fresh = await self._claim(session, readable, lock=not self.ordered)
            fresh_ids = {id(i) for i in fresh}
            deliveries = [i.delivery for i in fresh if i.delivery is not None]
            outcomes = await self._apply_batch(session, deliveries) if deliveries else {}
            for item in items:
                if item.reason is not None:
                    result.dead.append(item)
                elif id(item) not in fresh_ids:
                    result.acked.append(item)  # already processed: a redelivery
                elif (outcome := outcomes.get(_event_id(item))) is None:
                    result.acked.append(item)
                elif outcome.waiting:
                    item.reason, item.code = outcome.reason, outcome.code
                    result.waiting.append(item)
                else:
                    item.reason, item.code = outcome.reason, outcome.code
                    result.dead.append(item)
            await self._dead_letter(session, result.dead, "dead")
            await self._dead_letter(session, result.waiting, "waiting")
            if self.ordered and result.waiting:  # nothing is redelivered to wait for
                raise Rejected(f"{self.name}: an ordered consumer cannot wait for a newer one")
            waiting_ids = {id(i) for i in result.waiting}
            done = [i for i in fresh if id(i) not in waiting_ids]
            await self._record_processed(session, done, items, result.waiting)
            await session.commit()
        result.applied = [i.delivery.envelope.short_type for i in done if i.delivery is not None]
        if deliveries or result.dead or result.waiting:
            self._after_commit()
        return result

    async def _in_order(
        self, session: AsyncSession, items: Sequence[_Item], after: int | None
    ) -> list[_Item]:
        """For an ordered consumer, under its own lock: ``ReadAgain`` if the committed
        position is behind the sequence read before this batch (a batch before it has not
        been committed); otherwise the items at or before the position (already processed,
        by this reader before a crash or by a replica)."""
        assert after is not None, "an ordered consumer is told where each batch starts"
        params = {"consumer": self.name}
        await session.execute(self._sql.order_lock, params)
        row = (await session.execute(self._sql.read_position, params)).first()
        epoch = items[0].epoch
        if row is not None and row.stream_epoch > epoch:
            raise ReadAgain(f"{self.name}: the position is in a later stream epoch")
        position = row.stream_seq if row is not None and row.stream_epoch == epoch else 0
        if position < after:
            raise ReadAgain(
                f"{self.name}: the position is {position}, this batch follows {after}: "
                "an earlier batch was not committed"
            )
        return [i for i in items if i.position <= position]

    async def _write_position(self, session: AsyncSession, epoch: int, seq: int) -> None:
        await session.execute(
            self._sql.position, {"consumer": self.name, "epoch": epoch, "seq": seq}
        )

    async def _claim(
        self, session: AsyncSession, items: Sequence[_Item], *, lock: bool
    ) -> list[_Item]:
        """Insert the inbox rows first: the items it inserted are fresh; the rest were
        processed before (or repeat in this batch). A concurrent replica that claimed the
        same event makes this wait for its commit, then see it as processed. With ``lock``,
        the same statement then takes the locks of the items' matters (matter_locks), once
        every inbox row is in (so it never holds a lock while it waits for a replica's
        commit): one round trip for both."""
        if not items:
            return []
        ids = list(dict.fromkeys(_event_id(i) for i in items))
        params: dict[str, object] = {"consumer": self.name, "ids": ids}
        if lock:
            params["space"] = self._space
            params["matters"] = list(dict.fromkeys(_subject(i) for i in items))
            row = (await session.execute(self._sql.claim_and_lock, params)).one()
            claimed = set(row.ids)
        else:
            claimed = set(await session.scalars(self._sql.inbox_claim, params))
        fresh = []
        for item in items:
            if _event_id(item) in claimed:
                claimed.discard(_event_id(item))
                fresh.append(item)
        return fresh

    async def _record_processed(
        self,
        session: AsyncSession,
        done: Sequence[_Item],
        items: Sequence[_Item],
        waiting: Sequence[_Item],
    ) -> None:
        if waiting:  # claimed but not applied: they come back for a newer consumer
            params = {"consumer": self.name, "ids": [_event_id(i) for i in waiting]}
            await session.execute(self._sql.inbox_release, params)
        if done:
            redelivered = [i.position for i in done if i.message.metadata.num_delivered > 1]
            if redelivered:  # it may have waited for a newer consumer before
                await session.execute(
                    self._sql.waiting_done,
                    {"consumer": self.name, "epoch": done[0].epoch, "seqs": redelivered},
                )
        now = time.monotonic()
        if self.ordered:  # the exact position, with the effects: what the reader resumes from
            await self._write_position(session, items[0].epoch, max(i.position for i in items))
        elif now - self._position_written >= POSITION_EVERY_SECONDS:
            # Only a hint for re-creating a deleted durable (the inbox absorbs any replay),
            # so live traffic does not pay a statement per transaction for it.
            self._position_written = now
            last = max(i.position for i in items)
            position = {"consumer": self.name, "epoch": items[0].epoch, "seq": last}
            await session.execute(self._sql.position, position)

    async def _dead_letter(
        self, session: AsyncSession, items: Sequence[_Item], status: str
    ) -> None:
        if not items:
            return
        for item in items:
            # A refusal with its reason code (a sender's message) is the system working; a
            # dead letter without one (our own event, or failed too often) is a fault.
            dead = logging.INFO if item.code else logging.ERROR
            level = logging.WARNING if status == "waiting" else dead
            log.log(
                level,
                "%s: %s %s#%d (%s): %s",
                self.name,
                status,
                item.message.subject,
                item.position,
                item.code or "no reason code",
                item.reason,
                extra=_log_ids(item),
            )
        letters = [
            DeadLetter(
                consumer=self.name,
                status=status,
                event_id=_event_id(i) if i.delivery else None,
                stream=str(i.message.metadata.stream),
                epoch=i.epoch,
                seq=i.position,
                subject=i.message.subject,
                deliveries=i.message.metadata.num_delivered,
                reason=i.reason or "",
                headers=dict(i.message.headers or {}),
                raw=bytes(i.message.data),
                code=i.code,
            )
            for i in items
        ]
        await self._dead_letters.put(session, letters)

    async def _settle(self, result: _Result) -> None:
        for item in result.acked:
            self._failures.pop((item.epoch, item.position), None)
            await item.message.ack()
        for item in result.dead:
            self._failures.pop((item.epoch, item.position), None)
            await item.message.term()
        for item in result.waiting:
            await item.message.nak(delay=self._backoff(item.message.metadata.num_delivered))


class _Statements:
    """The consumer's SQL, written once per schema: cached, one round trip each."""

    def __init__(self, plumbing: Plumbing) -> None:
        inbox = plumbing.inbox.fullname
        dead = plumbing.dead_letters.fullname  # waiting letters that were applied at last
        positions = plumbing.positions.fullname
        self.inbox_claim = text(
            f"insert into {inbox} (consumer, event_id) "
            "select :consumer, unnest(cast(:ids as text[])) on conflict do nothing "
            "returning event_id"
        )
        # The inbox rows first (all of them: the aggregate reads the insert to its end),
        # then the matters' locks in key order: the subquery in the select list runs when
        # the one row is produced (not a filter, which would run before the insert).
        self.claim_and_lock = text(
            f"with claimed as (insert into {inbox} (consumer, event_id) "
            "select :consumer, unnest(cast(:ids as text[])) on conflict do nothing "
            "returning event_id), "
            "fresh as (select coalesce(array_agg(event_id), '{}') as ids from claimed) "
            f"select ids, (select count(*) from ({locking(':space', ':matters')}) as locks) "
            "as locked from fresh"
        )
        self.inbox_release = text(
            f"delete from {inbox} where consumer = :consumer "
            "and event_id = any(cast(:ids as text[]))"
        )
        self.waiting_done = text(
            f"delete from {dead} where consumer = :consumer and status = 'waiting' "
            "and stream_epoch = :epoch and stream_seq = any(cast(:seqs as bigint[]))"
        )
        self.order_lock = text(
            "select pg_advisory_xact_lock(cast(x'4d514f52' as int), hashtext(:consumer))"
        )
        self.read_position = text(
            f"select stream_epoch, stream_seq from {positions} where consumer = :consumer"
        )
        self.position = text(
            f"insert into {positions} as p (consumer, stream_epoch, stream_seq) "
            "values (:consumer, :epoch, :seq) on conflict (consumer) do update set "
            "stream_epoch = excluded.stream_epoch, updated_at = now(), stream_seq = case "
            "when p.stream_epoch = excluded.stream_epoch "
            "then greatest(p.stream_seq, excluded.stream_seq) else excluded.stream_seq end"
        )


def _log_ids(item: _Item) -> dict[str, str]:
    """The event's ids, as fields of a log line about it (none for an unreadable one)."""
    if item.delivery is None:
        return {}
    envelope = item.delivery.envelope
    return {"event_id": envelope.id, "correlation_id": envelope.correlationid}


def _subject(item: _Item) -> str:
    assert item.delivery is not None
    return item.delivery.envelope.subject


def _event_id(item: _Item) -> str:
    assert item.delivery is not None
    return item.delivery.envelope.id


async def _nak_all(items: Sequence[_Item], delay: float) -> None:
    for item in items:
        await item.message.nak(delay=delay)
