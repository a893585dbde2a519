"""Where a rebuild's events come from, as ``Delivery`` objects the live consumers would get.

The canonical stream is read from its first sequence by an ephemeral pull consumer (no
acks, removed when the rebuild ends; the live durables are not touched). A re-created
stream no longer holds the events of its earlier epochs (nor does one whose first messages
were removed): those exist only in the live audit table (``projection.events``), and are
made again from its sealed columns alone (what ``minqing audit verify`` checks), in
(epoch, sequence) order, before the stream.

``Replay`` is pure: it decides, like each consumer's inbox, which deliveries a read
model still has to apply (an event id once, except one that waits for a newer consumer),
and counts what happened.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from pydantic import ValidationError
from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.views.history import events
from minqing.services.projection.views.history.seal import CANONICAL_FIELDS
from minqing.shared.contract.envelope import Envelope, UnreadableEvent
from minqing.shared.messaging.consumer import Delivery, Outcome, RawMessage, parse_message

FETCH_WAIT_SECONDS = 1.0
READER_IDLE_SECONDS = 120.0  # the server removes the reader's consumer after this idle time


def delivery_of(message: RawMessage, epoch: int) -> Delivery:
    """The delivery the live consumer builds from a stream message (``UnreadableEvent`` if
    it cannot be parsed)."""
    envelope = parse_message(message)
    meta = message.metadata
    return Delivery(
        envelope,
        message.subject,
        epoch,
        meta.sequence.stream,
        1,
        bytes(message.data),
        dict(message.headers or {}),
    )


# The columns an event is made again from: exactly the sealed ones (``seal.py``), less its
# place in the log, which the rebuilt chain gives it again.
STORED = tuple(name for name in CANONICAL_FIELDS if name != "log_seq")


def stored_delivery(subject_prefix: str, row: Mapping[str, Any]) -> Delivery:
    """The delivery of an event the stream no longer has, made from its sealed columns
    (``UnreadableEvent`` if they do not make a valid envelope)."""
    try:
        envelope = Envelope(
            specversion="1.0",
            id=row["event_id"],
            source=row["source"],
            type=row["type"],
            subject=row["issue_id"],
            time=row["time"],
            data=row["data"],
            dataversion=row["dataversion"],
            correlationid=row["correlationid"],
            causationid=row["causationid"],
            actor=row["actor"],
        )
    except ValidationError as exc:
        raise UnreadableEvent(f"stored event {row['event_id']}: {exc}") from exc
    subject = f"{subject_prefix}.{envelope.short_type}"
    epoch, seq = row["stream_epoch"], row["stream_seq"]
    return Delivery(envelope, subject, epoch, seq, 1, envelope.to_json())


@dataclass
class ViewCount:
    """What one read model did with the replayed events."""

    applied: int = 0
    duplicates: int = 0  # an event id it had applied already (the live inbox skips it too)
    waiting: int = 0  # waits for a newer consumer (a newer dataversion), as it does live
    dead: int = 0  # refused by the read model, as it would be live


@dataclass
class Replay:
    """The inbox of each rebuilt read model, in memory: which deliveries it still has to
    apply, and what came of them."""

    views: Sequence[str]
    read: int = 0
    unreadable: int = 0
    counts: dict[str, ViewCount] = field(default_factory=dict)
    _claimed: set[str] = field(default_factory=set)  # ids every view has taken in
    _waiting: dict[str, set[str]] = field(default_factory=dict)  # released again, per view

    def __post_init__(self) -> None:
        for name in self.views:
            self.counts.setdefault(name, ViewCount())
            self._waiting.setdefault(name, set())

    def fresh(self, view: str, deliveries: Iterable[Delivery]) -> list[Delivery]:
        """The deliveries ``view`` has not applied yet, each event id once."""
        out: list[Delivery] = []
        taken: set[str] = set()
        waiting = self._waiting[view]
        for d in deliveries:
            event_id = d.envelope.id
            if event_id in taken or (event_id in self._claimed and event_id not in waiting):
                self.counts[view].duplicates += 1
                continue
            taken.add(event_id)
            out.append(d)
        return out

    def settle(
        self, view: str, applied: Sequence[Delivery], outcomes: Mapping[str, Outcome]
    ) -> None:
        """Record what ``view`` did with the deliveries ``fresh`` gave it."""
        count, waiting = self.counts[view], self._waiting[view]
        for d in applied:
            event_id = d.envelope.id
            outcome = outcomes.get(event_id)
            if outcome is not None and outcome.waiting:
                count.waiting += 1
                waiting.add(event_id)
            else:
                waiting.discard(event_id)
                if outcome is None:
                    count.applied += 1
                else:
                    count.dead += 1

    def taken(self, deliveries: Iterable[Delivery]) -> None:
        """Every view has had this batch: its event ids count as processed from now on
        (except, per view, those that wait for a newer consumer)."""
        self._claimed.update(d.envelope.id for d in deliveries)

    def outcomes(self) -> dict[str, Counter[str]]:
        """Per view: applied, duplicates, waiting, dead."""
        return {name: Counter(vars(c)) for name, c in self.counts.items()}


async def stored_before(
    session: AsyncSession, before: tuple[int, int], subject_prefix: str, batch: int
) -> AsyncIterator[tuple[list[Delivery], int]]:
    """Batches of the events the stream no longer has, placed before ``(epoch, sequence)``
    (the stream's first message), from the live audit table in (epoch, sequence) order;
    with each batch, how many of its rows were unreadable."""
    position = tuple_(events.c.stream_epoch, events.c.stream_seq)
    after = (0, 0)
    while True:
        query = (
            select(*(events.c[name] for name in STORED))
            .where(position < tuple_(*before), position > tuple_(*after))
            .order_by(events.c.stream_epoch, events.c.stream_seq)
            .limit(batch)
        )
        rows = (await session.execute(query)).all()
        if not rows:
            return
        found, unreadable = [], 0
        for row in rows:
            try:
                found.append(stored_delivery(subject_prefix, row._asdict()))
            except UnreadableEvent:
                unreadable += 1
        after = (rows[-1].stream_epoch, rows[-1].stream_seq)
        yield found, unreadable


async def count_before(session: AsyncSession, before: tuple[int, int]) -> int:
    """How many events ``stored_before`` gives."""
    position = tuple_(events.c.stream_epoch, events.c.stream_seq)
    query = select(func.count()).select_from(events).where(position < tuple_(*before))
    return int(await session.scalar(query) or 0)


@dataclass
class Read:
    """One read from the stream: the deliveries, and how many messages it took in all
    (unreadable ones among them)."""

    deliveries: list[Delivery]
    messages: int
    unreadable: int


class StreamReader:
    """Reads the canonical stream in order from a sequence, with an ephemeral consumer."""

    def __init__(self, js: JetStreamContext, stream: str, subject_prefix: str, epoch: int):
        self._js = js
        self._stream = stream
        self._subjects = f"{subject_prefix}.>"
        self._epoch = epoch
        self._sub: JetStreamContext.PullSubscription | None = None
        self._held: list[RawMessage] = []  # fetched beyond what a pass reads: the next one's
        self.last = 0  # the last sequence read

    async def open(self, start: int = 1) -> None:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start, 1),
            ack_policy=AckPolicy.NONE,
            inactive_threshold=READER_IDLE_SECONDS,
            mem_storage=True,
        )
        self._sub = await self._js.pull_subscribe(
            self._subjects, stream=self._stream, config=config
        )

    async def batch(self, size: int, upto: int) -> Read:
        """The next messages up to sequence ``upto``, at most ``size``; none at the end."""
        assert self._sub is not None, "open() first"
        if self.last >= upto:
            return Read([], 0, 0)
        messages, self._held = self._held, []
        if not messages:
            try:
                wanted = max(1, min(size, upto - self.last))
                messages = list(await self._sub.fetch(batch=wanted, timeout=FETCH_WAIT_SECONDS))
            except TimeoutError:
                return Read([], 0, 0)
        read = Read([], 0, 0)
        for message in messages:
            seq = message.metadata.sequence.stream
            if seq > upto or read.messages >= size:
                self._held.append(message)
                continue
            if seq <= self.last:
                continue
            read.messages += 1
            self.last = seq
            try:
                read.deliveries.append(delivery_of(message, self._epoch))
            except UnreadableEvent:
                read.unreadable += 1
        return read

    async def close(self) -> None:
        """Remove the ephemeral consumer (the server would, once it is idle)."""
        if self._sub is None:
            return
        sub, self._sub = self._sub, None
        with contextlib.suppress(Exception):
            info = await sub.consumer_info()
            await sub.unsubscribe()
            await self._js.delete_consumer(self._stream, info.name)
