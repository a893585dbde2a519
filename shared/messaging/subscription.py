"""Named durable pull consumers on any stream, each feeding one ``BatchConsumer``.

A subscription attaches (stream, epoch, durable consumer), then fetches batches and hands
them on, fetching the next batch while the current one commits. It checks every few
seconds that its stream and durable still exist: a deleted durable is re-created from the
last committed position, and a re-created stream (sequences restart at 1) starts a new
epoch, so nothing is ever keyed by a stale position.

An ordered subscription (``Subscription.ordered``: the audit trail's) reads with an
ephemeral consumer of its own, without acks, from the position its consumer committed:
every message in stream order, each once per reading. A gap in what the server delivered
(a lost fetch), a batch that did not commit, or a replica that committed further makes it
read again from the committed position. Replicas each read the whole stream; the position,
checked under a lock in each transaction, lets only the next batch in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import select, text

from minqing.shared.domain.ids import new_id
from minqing.shared.messaging.consumer import BatchConsumer, RawMessage, ReadAgain
from minqing.shared.messaging.streams import ensure_stream, stream_created
from minqing.shared.persistence.db import Sessions
from minqing.shared.persistence.tables import Plumbing

log = logging.getLogger(__name__)

FETCH_WAIT_SECONDS = 0.5  # an idle fetch's wait: also the longest a stopping consumer waits
LAST_WAIT = 0.05  # a stopping consumer's last fetch: only what already arrived


@dataclass(frozen=True)
class Subscription:
    """A durable consumer: its name, stream, subjects and what applies its batches."""

    name: str
    stream: StreamConfig
    subjects: tuple[str, ...]
    consumer: BatchConsumer
    batch_size: int
    ack_wait: float
    check_every: float = 5.0  # seconds between checks that the durable and stream exist
    stalled_after: float = 60.0  # seconds without progress, with a backlog, before "stalled"
    ordered: bool = False  # read in stream order from the committed position (no acks)


class ConsumerMissing(Exception):
    """The durable consumer or its stream is gone; attach again."""


class PullConsumer:
    """Runs one subscription until ``stop``; ``health()`` says whether it does its job."""

    def __init__(self, subscription: Subscription, sessions: Sessions, plumbing: Plumbing):
        self.subscription = subscription
        self._epochs = Epochs(sessions, plumbing)
        self._sessions = sessions
        self._positions = plumbing.positions
        self._stopping = asyncio.Event()
        self.epoch = 0
        self._attached = False
        self._problem: str | None = "not started"
        self._backlog = 0
        self._progress = time.monotonic()
        self._busy_since: float | None = None
        self._checked = 0.0
        self._consumer_name = subscription.name  # an ordered reader's ephemeral consumer
        self._read_upto = 0  # an ordered reader: the last stream sequence handed over
        self._delivered = 0  # an ordered reader: the last consumer sequence received

    @property
    def name(self) -> str:
        return self.subscription.name

    def config(self, start_after: tuple[int, int] | None) -> ConsumerConfig:
        """Durable pull consumer; the server never gives up (we dead-letter ourselves)."""
        sub = self.subscription
        start = start_after[1] + 1 if start_after and start_after[0] == self.epoch else None
        return ConsumerConfig(
            durable_name=sub.name,
            name=sub.name,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
            opt_start_seq=start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=sub.ack_wait,
            max_deliver=-1,
            max_ack_pending=sub.batch_size * 10,
            filter_subjects=list(sub.subjects),
        )

    async def run(self, js: JetStreamContext) -> None:
        """Attach and consume until ``stop``; every failure is logged and retried."""
        while not self._stopping.is_set():
            try:
                subscription = await self.attach(js)
                await self._consume(js, subscription)
            except asyncio.CancelledError:
                raise
            except ConsumerMissing as exc:
                self._attached = False
                self._problem = str(exc)
                log.warning("%s: %s; attaching again", self.name, exc)
            except Exception as exc:
                self._attached = False
                self._problem = f"cannot attach: {exc!r}"
                log.warning("%s: %s", self.name, self._problem)
                await self._pause(1.0)

    def ordered_config(self, position: tuple[int, int] | None) -> ConsumerConfig:
        """An ephemeral reader without acks, from just after the committed position."""
        sub = self.subscription
        start = position[1] + 1 if position and position[0] == self.epoch else None
        return ConsumerConfig(
            name=f"{sub.name}-reader-{new_id().lower()}",  # one per process and attachment
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=max(sub.ack_wait, 30.0),  # the server removes it if we die
            mem_storage=True,
            filter_subjects=list(sub.subjects),
        )

    async def attach(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        """Ensure stream and durable exist (re-creating what is missing), then bind."""
        sub = self.subscription
        assert sub.stream.name is not None
        info = await ensure_stream(js, sub.stream)
        self.epoch = await self._epochs.resolve(sub.stream.name, stream_created(info))
        if sub.ordered:
            return await self._attach_ordered(js)
        try:
            existing = await js.consumer_info(sub.stream.name, sub.name)
        except NotFoundError:
            existing = None
        if existing is None:
            position = await self._position()
            await js.add_consumer(sub.stream.name, config=self.config(position))
            log.info("%s: created durable consumer after position %s", self.name, position)
        elif list(existing.config.filter_subjects or []) != list(sub.subjects):
            config = self.config(None)
            config.deliver_policy = existing.config.deliver_policy
            config.opt_start_seq = existing.config.opt_start_seq
            await js.add_consumer(sub.stream.name, config=config)
        bound = await js.pull_subscribe_bind(sub.name, stream=sub.stream.name)
        self._attached, self._problem = True, None
        self._progress = time.monotonic()
        return bound

    async def _attach_ordered(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        sub = self.subscription
        assert sub.stream.name is not None
        with contextlib.suppress(NotFoundError):  # a durable of this name: an older version's
            await js.delete_consumer(sub.stream.name, sub.name)
            log.info("%s: removed the durable consumer of an earlier version", self.name)
        position = await self._position()
        config = self.ordered_config(position)
        created = await js.add_consumer(sub.stream.name, config=config)
        self._consumer_name = created.name
        start = config.opt_start_seq or 1
        self._read_upto, self._delivered = start - 1, 0
        bound = await js.pull_subscribe_bind(created.name, stream=sub.stream.name)
        self._attached, self._problem = True, None
        self._progress = time.monotonic()
        return bound

    async def _position(self) -> tuple[int, int] | None:
        p = self._positions
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(p.c.stream_epoch, p.c.stream_seq).where(p.c.consumer == self.name)
                )
            ).first()
        return None if row is None else (row.stream_epoch, row.stream_seq)

    async def _consume(
        self, js: JetStreamContext, subscription: JetStreamContext.PullSubscription
    ) -> None:
        """Fetch and hand over batches until stopped. Stopping issues no new fetch; the
        fetch under way is let finish (it ends within ``FETCH_WAIT_SECONDS``) and what it
        brings is processed and acknowledged like any batch, so a stopping replica leaves
        nothing delivered-but-unacknowledged to come back to the other one."""
        batch = self.subscription.batch_size
        pending: asyncio.Task[list[RawMessage]] | None = None
        try:
            while True:
                if pending is None:
                    if not self._stopping.is_set():
                        pending = asyncio.create_task(_fetch(subscription, batch))
                    elif subscription.pending_msgs:
                        # What the server delivered as the last fetch stopped waiting sits
                        # in the subscription's queue: a short fetch takes it first.
                        pending = asyncio.create_task(_fetch(subscription, batch, LAST_WAIT))
                    else:
                        break
                messages = await pending
                pending = None
                if messages:
                    if not self._stopping.is_set():
                        # The next batch is fetched while this one commits.
                        pending = asyncio.create_task(_fetch(subscription, batch))
                    self._busy_since = time.monotonic()
                    applied = await self._hand_over(messages)
                    self._busy_since = None
                    if applied:
                        self._progress = time.monotonic()
                    else:
                        await self._pause(2.0)  # database down: wait, the messages come back
                await self._check(js)
        finally:
            if pending is not None:  # cancelled, or failed: what it held comes back
                pending.cancel()
                with contextlib.suppress(BaseException):
                    for message in await pending:
                        if not self.subscription.ordered:
                            await message.nak()
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            if self.subscription.ordered:
                with contextlib.suppress(Exception):
                    assert self.subscription.stream.name is not None
                    await js.delete_consumer(self.subscription.stream.name, self._consumer_name)

    async def _hand_over(self, messages: list[RawMessage]) -> bool:
        """Give a batch to the consumer; an ordered reader first checks that the server
        skipped nothing, and reads again from the position when the consumer says so."""
        consumer = self.subscription.consumer
        if not self.subscription.ordered:
            return await consumer.consume(messages, self.epoch)
        for message in messages:
            delivered = message.metadata.sequence.consumer
            if delivered != self._delivered + 1:
                raise ConsumerMissing(
                    f"missed messages ({self._delivered + 1} to {delivered - 1}): reading again"
                )
            self._delivered = delivered
        after = self._read_upto
        self._read_upto = messages[-1].metadata.sequence.stream
        batch = [_Unacked(m) for m in messages]
        try:
            # Nothing comes back by itself: while the database is down, the same batch
            # is tried again (the consumer logs the outage once, then once a minute).
            while not await consumer.consume(batch, self.epoch, after):
                if self._stopping.is_set():
                    return False
                await self._pause(2.0)
            return True
        except ReadAgain as exc:
            raise ConsumerMissing(str(exc)) from exc

    async def _check(self, js: JetStreamContext) -> None:
        """Every few seconds: is the durable still there, and is it keeping up?"""
        now = time.monotonic()
        if now - self._checked < self.subscription.check_every:
            return
        self._checked = now
        sub = self.subscription
        assert sub.stream.name is not None
        try:
            info = await js.consumer_info(sub.stream.name, self._consumer_name)
            stream = await js.stream_info(sub.stream.name)
        except NotFoundError as exc:
            raise ConsumerMissing(f"durable consumer or stream missing ({exc})") from exc
        if self.epoch != await self._epochs.resolve(sub.stream.name, stream_created(stream)):
            raise ConsumerMissing("the stream was re-created")
        self._backlog = (info.num_pending or 0) + (info.num_ack_pending or 0)
        if not self._backlog:
            self._progress = now

    @property
    def pending(self) -> int:
        """Messages this consumer had yet to acknowledge at its last check (its lag)."""
        return self._backlog

    def health(self) -> str:
        """ "ok", or why this consumer is not doing its job."""
        if self._problem is not None:
            return self._problem
        if not self._attached:
            return "not attached"
        now, limit = time.monotonic(), self.subscription.stalled_after
        if self._busy_since is not None and now - self._busy_since > limit:
            return f"stalled: one batch in hand for {now - self._busy_since:.0f} s"
        if self._backlog and now - self._progress > limit:
            waiting = f"{self._backlog} messages waiting"
            return f"stalled: {waiting}, no progress for {now - self._progress:.0f} s"
        return "ok"

    def stop(self) -> None:
        """Issue no new fetch; finish the one under way and the batches in hand, then
        return from ``run``."""
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()


class _Unacked:
    """A message of a reader without acks: acking, nak-ing or terminating it is a no-op
    (what is not committed is read again from the position)."""

    def __init__(self, message: RawMessage) -> None:
        self._message = message
        self.subject = message.subject
        self.data = message.data
        self.headers = message.headers

    @property
    def metadata(self) -> Any:  # the wrapped message's, whatever its type
        return self._message.metadata

    async def ack(self) -> None:
        pass

    async def nak(self, delay: float | None = None) -> None:
        pass

    async def term(self) -> None:
        pass


async def _fetch(
    subscription: JetStreamContext.PullSubscription, batch: int, wait: float = 0.0
) -> list[RawMessage]:
    try:
        return list(await subscription.fetch(batch=batch, timeout=wait or FETCH_WAIT_SECONDS))
    except TimeoutError:
        return []  # nothing new; nats-py's own TimeoutError subclasses this one


class Epochs:
    """Numbers each incarnation of a stream, so positions survive a re-created stream."""

    def __init__(self, sessions: Sessions, plumbing: Plumbing) -> None:
        self._sessions = sessions
        table = plumbing.stream_epochs.fullname
        self._get = text(
            f"select epoch from {table} where stream = :stream and stream_created = :created"
        )
        # Dense numbers (1, 2, 3...): a racing insert conflicts and reads the winner's.
        self._add = text(
            f"insert into {table} (epoch, stream, stream_created) "
            f"select coalesce(max(epoch), 0) + 1, :stream, :created from {table} "
            "on conflict do nothing returning epoch"
        )
        self._count = text(f"select count(*) from {table} where stream = :stream")
        self._known: dict[tuple[str, object], int] = {}

    async def resolve(self, stream: str, created: object) -> int:
        """The epoch of this incarnation of ``stream``, numbering it if it is new."""
        key = (stream, created)
        if key in self._known:
            return self._known[key]
        params = {"stream": stream, "created": created}
        async with self._sessions() as session:
            epoch = await session.scalar(self._get, params)
            if epoch is None:  # first seen: insert (a concurrent insert may win the race)
                epoch = await session.scalar(self._add, params)
                if epoch is not None and await session.scalar(self._count, params) > 1:
                    log.error(
                        "stream %s was re-created (created %s): it no longer holds the events "
                        "before; positions now count in epoch %d. Restore the stream from a "
                        "backup if you have one; services keep what they applied and never "
                        "re-key it",
                        stream,
                        created,
                        epoch,
                    )
                epoch = epoch or await session.scalar(self._get, params)
            await session.commit()
        self._known[key] = int(epoch)
        return int(epoch)
