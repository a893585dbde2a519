"""What every service process has: database, NATS, outbox relay, subscriptions, lifespan.

Each service's ``app.py`` builds one ``Runtime``, binds its use cases to the parts they
use (a unit-of-work factory, the calendar, the reference data) and subscribes its event
handlers. Handlers never see the runtime. ``start`` connects (retrying until the startup
timeout), declares the stream, starts the relay, the subscriptions and the housekeeping;
``stop`` lets consumers finish their batch and closes everything.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from faststream.nats import NatsBroker
from faststream.nats.security import NatsCredentials, NatsNKey
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from minqing.shared.contract.asyncapi import Channel, Consumers, asyncapi
from minqing.shared.domain.clock import Clock, system_clock
from minqing.shared.messaging.access import connect_options, service_inbox
from minqing.shared.messaging.consumer import ApplyBatch, BatchConsumer, Parser, parse_message
from minqing.shared.messaging.dead_letters import DeadLetterSink
from minqing.shared.messaging.outbox import Outbox, Outgoing, Relay
from minqing.shared.messaging.streams import (
    batch_publisher,
    check_server,
    ensure_stream,
    stream_config,
)
from minqing.shared.messaging.subscription import PullConsumer, Subscription
from minqing.shared.persistence.db import Sessions, make_engine, make_sessions, reachable
from minqing.shared.persistence.housekeeping import Housekeeping
from minqing.shared.persistence.tables import Plumbing
from minqing.shared.persistence.uow import SqlUnitOfWork, sql_units_of_work
from minqing.shared.service.metrics import ServiceMetrics, scrape
from minqing.shared.service.settings import ServiceName, Settings

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 10.0
S = TypeVar("S")


@dataclass
class Runtime:
    """The wired parts of one service process; tests build it with their own settings."""

    name: ServiceName
    settings: Settings
    plumbing: Plumbing
    engine: AsyncEngine
    sessions: Sessions
    broker: NatsBroker
    relay: Relay
    outbox: Outbox
    clock: Clock = system_clock
    consumers: list[PullConsumer] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    consumer_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    relay_task: asyncio.Task[None] | None = None
    js: JetStreamContext | None = None
    # Durable consumer -> event classes: this service's own (its declaration).
    catalog: Consumers = field(default_factory=dict)
    # The channels beside the canonical stream that this service owns (its declaration).
    channels: list[Channel] = field(default_factory=list)
    # Intake keeps accepting reports into its outbox while NATS is away: still ready then.
    accepts_without_nats: bool = False
    _reads: Sessions | None = None
    jobs: list[Job] = field(default_factory=list)
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)

    def every(self, seconds: float, name: str, run: Callable[[], Awaitable[object]]) -> None:
        """Run ``run`` once the service has started, then every ``seconds``; a failure is
        logged and the job runs again at its next time."""
        self.jobs.append(Job(name, seconds, run))

    # Background loops of the service's own (intake's import worker): started after the
    # consumers, cancelled at stop.
    workers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Streams besides the canonical one this service publishes to (declared at start).
    streams: list[StreamConfig] = field(default_factory=list)

    # The contract document as served, made at its first request (the wiring is done by then).
    _contract_json: bytes | None = field(default=None, init=False, repr=False)

    def contract(self) -> dict[str, Any]:
        """This service's part of the event contract, as an AsyncAPI 3 document."""
        return asyncapi(self.settings, self.catalog, self.channels)

    def contract_json(self) -> bytes:
        """``contract()`` as JSON, made once: the document never changes while the process
        runs, and making it (JSON schemas of every event) costs tens of milliseconds."""
        if self._contract_json is None:
            self._contract_json = json.dumps(self.contract(), ensure_ascii=False).encode()
        return self._contract_json

    async def dead_letters(self, limit: int, status: str | None) -> list[dict[str, Any]]:
        """Dead letters of this service's consumers, newest first, raw bytes shown safely."""
        table = self.plumbing.dead_letters
        query = select(table).order_by(table.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(table.c.status == status)
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_dead_letter_out(row._asdict()) for row in rows]

    @property
    def reads(self) -> Sessions:
        """Sessions for reads alone: each statement stands on its own (autocommit), so a
        read is one round trip, not BEGIN, the query and ROLLBACK. What it sees is what a
        READ COMMITTED transaction (PostgreSQL's default, ours) sees: each statement its
        own snapshot. Nothing written through them is kept together; never write with them."""
        if self._reads is None:
            self._reads = make_sessions(self.engine.execution_options(isolation_level="AUTOCOMMIT"))
        return self._reads

    def units_of_work(self, store: Callable[[AsyncSession], S]) -> Callable[[], Any]:
        """A factory of units of work over this service's database and outbox."""
        return sql_units_of_work(
            self.sessions, store, self.outbox, service=self.name, clock=self.clock
        )

    def read_units_of_work(self, store: Callable[[AsyncSession], S]) -> Callable[[], Any]:
        """Units of work that only read (``reads``); never record or commit through one."""
        return sql_units_of_work(
            self.reads, store, self.outbox, service=self.name, clock=self.clock
        )

    def batch_unit_of_work(self, session: AsyncSession, store: S) -> SqlUnitOfWork[S]:
        """A unit of work inside a consumer's batch transaction (the consumer commits)."""
        return SqlUnitOfWork(session, store, self.outbox, service=self.name, now=self.clock())

    def subscribe(
        self,
        view: str | None,
        apply_batch: ApplyBatch,
        types: list[str] | None,
        *,
        parser: Parser = parse_message,
        stream: StreamConfig | None = None,
        subjects: tuple[str, ...] | None = None,
        dead_letters: DeadLetterSink | None = None,
        after_commit: Callable[[], None] | None = None,
        ordered: bool = False,
    ) -> None:
        """A durable consumer ``<service>[-<view>]``: by default of the canonical events
        ``types`` on the canonical stream; any stream, subjects, parser and dead-letter sink
        can be given instead (the ingress stream, a dead-letter stream). ``after_commit``
        runs after each committed batch (e.g. to count what it did). ``ordered``: read in stream
        order from the committed position instead (``shared/messaging/subscription.py``)."""
        name = self.name if view is None else f"{self.name}-{view}"
        prefix = self.settings.subject_prefix
        if subjects is None:
            subjects = tuple(f"{prefix}.{t}" for t in types) if types else (f"{prefix}.>",)
        consumer = BatchConsumer(
            name,
            self.sessions,
            self.plumbing,
            apply_batch,
            parser=parser,
            dead_letters=dead_letters,
            max_deliver=self.settings.consumer_max_deliver,
            retry_delay=self.settings.consumer_retry_delay_seconds,
            after_commit=_both(self.outbox.wake_if_added, after_commit),
            ordered=ordered,
            observe=self.metrics.consumed,
            redelivered=self.metrics.redelivered,
        )
        subscription = Subscription(
            name=name,
            stream=stream or stream_config(self.settings),
            subjects=subjects,
            consumer=consumer,
            batch_size=self.settings.consumer_batch_size,
            ack_wait=self.settings.consumer_ack_wait_seconds,
            check_every=self.settings.consumer_check_seconds,
            stalled_after=self.settings.consumer_stall_seconds,
            ordered=ordered,
        )
        self.consumers.append(PullConsumer(subscription, self.sessions, self.plumbing))

    async def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether the service can do its job, and each component's state."""
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2.0):
                await reachable(self.sessions)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {exc!r}"
        connection = self.broker._connection
        connected = connection is not None and connection.is_connected
        checks["nats"] = "ok" if connected else "unavailable: not connected"
        for consumer, task in zip(self.consumers, self.consumer_tasks, strict=False):
            checks[f"consumer {consumer.name}"] = "stopped" if task.done() else consumer.health()
        ok = all(v == "ok" for v in checks.values())
        if self.accepts_without_nats and checks["database"] == "ok" and not connected:
            checks["nats"] += f"; {await self._unsent()} events wait in the outbox"
            ok = True
        return ok, checks

    async def metrics_text(self) -> bytes:
        """``GET /metrics``: the counters, and the gauges read now."""
        pending = {consumer.name: consumer.pending for consumer in self.consumers}
        scraped = await scrape(self.sessions, self.plumbing, self.engine.pool, pending)
        return self.metrics.exposition(scraped)

    async def _unsent(self) -> int:
        o = self.plumbing.outbox
        async with self.sessions() as session:
            query = select(func.count()).where(o.c.published_at.is_(None))
            return int(await session.scalar(query) or 0)


@dataclass
class Job:
    """A periodic task of a service (e.g. recounting provisional deadlines)."""

    name: str
    seconds: float
    run: Callable[[], Awaitable[object]]
    completed: int = 0  # runs that finished without error

    async def loop(self) -> None:
        while True:
            try:
                result = await self.run()
                self.completed += 1
                log.info("%s: %s", self.name, result)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; it runs again in %.0f s", self.name, self.seconds)
            await asyncio.sleep(self.seconds)


def _both(first: Callable[[], None], then: Callable[[], None] | None) -> Callable[[], None]:
    if then is None:
        return first

    def both() -> None:
        first()
        then()

    return both


def _dead_letter_out(row: dict[str, Any]) -> dict[str, Any]:
    raw: bytes = row.pop("raw")
    row["payload"] = raw.decode("utf-8", errors="replace").replace("\x00", "\\0")
    row["payload_base64"] = base64.b64encode(raw).decode()
    return row


def _broker_credentials(settings: Settings, name: ServiceName) -> dict[str, Any]:
    """The service's NATS user for FastStream's broker (its ``security``), and its inbox."""
    options = connect_options(settings.nats_credentials, service_inbox(name))
    if seed := options.pop("nkeys_seed", None):
        options["security"] = NatsNKey.from_file(seed)
    elif creds := options.pop("user_credentials", None):
        options["security"] = NatsCredentials.from_file(creds)
    return options


def build_runtime(
    name: ServiceName, settings: Settings, plumbing: Plumbing, *, clock: Clock = system_clock
) -> Runtime:
    """Wire the parts; nothing connects until ``start``."""
    engine = make_engine(settings.database_url, settings)
    broker = NatsBroker(
        settings.nats_servers,
        log_level=logging.DEBUG,  # per-message logs off: our own code logs what matters
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        ping_interval=settings.nats_ping_seconds,
        max_outstanding_pings=2,
        **_broker_credentials(settings, name),
    )
    runtime = Runtime(
        name=name,
        settings=settings,
        plumbing=plumbing,
        engine=engine,
        sessions=make_sessions(engine),
        broker=broker,
        relay=None,  # type: ignore[arg-type]  # set just below: it publishes through the broker
        outbox=Outbox(plumbing.outbox, settings.subject_prefix),
        clock=clock,
    )

    async def publish(batch: Any) -> Any:
        assert runtime.js is not None, "the relay runs only after start()"
        return await batch_publisher(runtime.js, settings.stream_name)(batch)

    prefix = f"{settings.subject_prefix}."

    def published(sent: Sequence[Outgoing]) -> None:  # canonical events by type, others by stream
        runtime.metrics.published(
            [m.subject.removeprefix(prefix) if m.stream is None else m.stream for m in sent]
        )

    runtime.relay = Relay(
        engine,
        plumbing.outbox,
        publish,
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
        published=published,
    )
    runtime.outbox = Outbox(plumbing.outbox, settings.subject_prefix, runtime.relay.notify)
    return runtime


async def start(runtime: Runtime) -> None:
    """Connect (retrying), declare the stream, start relay, consumers and housekeeping."""
    settings = runtime.settings
    deadline = asyncio.get_running_loop().time() + settings.startup_timeout_seconds
    await _retry_until(deadline, "PostgreSQL", lambda: reachable(runtime.sessions))
    await _retry_until(deadline, "NATS", runtime.broker.connect)
    check_server(runtime.broker.connection)
    runtime.js = runtime.broker.connection.jetstream(publish_async_max_pending=1000)
    await ensure_stream(runtime.js, stream_config(settings))
    for extra in runtime.streams:
        await ensure_stream(runtime.js, extra)
    await runtime.broker.start()
    housekeeping = Housekeeping(runtime.sessions, runtime.plumbing, settings)
    runtime.relay_task = asyncio.create_task(runtime.relay.run(), name=f"{runtime.name}-relay")
    runtime.tasks.append(runtime.relay_task)
    runtime.tasks.append(asyncio.create_task(housekeeping.run(), name=f"{runtime.name}-prune"))
    for consumer in runtime.consumers:
        await consumer.attach(runtime.js)
        runtime.consumer_tasks.append(
            asyncio.create_task(consumer.run(runtime.js), name=consumer.name)
        )
    for job in runtime.jobs:
        runtime.tasks.append(asyncio.create_task(job.loop(), name=job.name))
    for worker in runtime.workers:
        runtime.tasks.append(asyncio.create_task(worker(), name=f"{runtime.name}-worker"))
    log.info("%s started", runtime.name)


async def stop(runtime: Runtime) -> None:
    """Let consumers finish and acknowledge their batch (fetching no more), let the relay
    publish what is committed (the events those batches and the last requests wrote), then
    close. Each step is bounded by ``STOP_GRACE_SECONDS``; what is left unsent then stays in
    the outbox for the next relay (another replica's, or this one's next start)."""
    for consumer in runtime.consumers:
        consumer.stop()
    if runtime.consumer_tasks:
        _, pending = await asyncio.wait(runtime.consumer_tasks, timeout=STOP_GRACE_SECONDS)
        runtime.tasks.extend(pending)
        runtime.consumer_tasks.clear()
    if runtime.relay_task is not None:
        runtime.relay.stop()
        await asyncio.wait([runtime.relay_task], timeout=STOP_GRACE_SECONDS)
        runtime.relay_task = None
    await cancel_and_wait(runtime.tasks)
    runtime.tasks.clear()
    await runtime.broker.stop()
    await runtime.engine.dispose()


async def cancel_and_wait(tasks: list[asyncio.Task[Any]], every: float = 1.0) -> None:
    """Cancel ``tasks`` and wait until each has ended, cancelling again every ``every``
    seconds those still running: a cancellation can be swallowed on its way (a client
    library that turns it into its own timeout error, which a retry loop then catches), and
    one lost cancellation must not hang a shutdown."""
    while running := [task for task in tasks if not task.done()]:
        for task in running:
            task.cancel()
        await asyncio.wait(running, timeout=every)
    for task in tasks:  # retrieve what they ended with, so nothing is logged as unretrieved
        if not task.cancelled():
            task.exception()


async def _retry_until(deadline: float, what: str, attempt: Any) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            await attempt()
            return
        except Exception as exc:
            if loop.time() >= deadline:
                raise RuntimeError(f"{what} did not become available: {exc!r}") from exc
            log.warning("waiting for %s: %r", what, exc)
            await asyncio.sleep(0.5)
