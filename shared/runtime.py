"""What every service process has: database, broker, outbox relay, consumers, lifespan.

Each service's ``app.py`` builds one ``Runtime`` and adds its own routes and handlers; the
lifespan here connects (retrying until the startup timeout), declares the stream, starts
the relay and the consumers, and stops them in reverse order. The HTTP routes every
service shares (health, contract, dead letters) are in ``shared.http``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from faststream.nats import NatsBroker
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared import reference
from shared.calendar import WeekdayCalendar, WorkingCalendar
from shared.clock import Clock, system_clock
from shared.consumer import ApplyBatch, BatchConsumer, Delivery, apply_each
from shared.db import Sessions, make_engine, make_sessions, ping
from shared.http import install
from shared.messaging import (
    PullConsumer,
    check_server,
    consumer_config,
    ensure_consumer,
    ensure_stream,
    make_broker,
    publisher,
)
from shared.outbox import Relay
from shared.settings import ServiceName, Settings
from shared.tables import Plumbing

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 10.0


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
    reference: reference.ReferenceData
    clock: Clock = system_clock
    calendar: WorkingCalendar = field(default_factory=WeekdayCalendar)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    consumer_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    consumers: list[PullConsumer] = field(default_factory=list)

    def consume_each(
        self,
        apply_one: Callable[[AsyncSession, Delivery], Awaitable[None]],
        types: Sequence[str] | None = None,
    ) -> None:
        """Subscribe with a function that applies one event at a time (in a batch commit)."""

        async def apply_batch(
            session: AsyncSession, deliveries: Sequence[Delivery]
        ) -> Mapping[str, str]:
            return await apply_each(session, deliveries, apply_one)

        self.consume(apply_batch, types)

    def consume(self, apply_batch: ApplyBatch, types: Sequence[str] | None = None) -> None:
        """Subscribe this service's durable consumer to ``types`` (default: every event)."""
        consumer = BatchConsumer(
            self.sessions,
            self.plumbing,
            apply_batch,
            max_deliver=self.settings.consumer_max_deliver,
            retry_delay=self.settings.consumer_retry_delay_seconds,
            after_commit=self.relay.notify,
        )
        config = consumer_config(self.settings, self.name, types)
        self.consumers.append(PullConsumer(self.settings, config, consumer))

    async def ready(self) -> dict[str, str]:
        """Component name -> "ok" or the reason it is not ready."""
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2.0):
                await ping(self.engine)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {exc!r}"
        connected = self.broker._connection is not None and self.broker._connection.is_connected
        checks["nats"] = "ok" if connected else "unavailable: not connected"
        if any(task.done() for task in self.consumer_tasks):
            checks["consumer"] = "stopped"
        return checks


def build_runtime(
    name: ServiceName,
    settings: Settings,
    plumbing: Plumbing,
    *,
    clock: Clock = system_clock,
    calendar: WorkingCalendar | None = None,
) -> Runtime:
    """Wire the parts; nothing connects until the app's lifespan starts."""
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    broker = make_broker(settings)
    relay = Relay(
        sessions,
        plumbing.outbox,
        publisher(broker, settings),
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
    )
    return Runtime(
        name=name,
        settings=settings,
        plumbing=plumbing,
        engine=engine,
        sessions=sessions,
        broker=broker,
        relay=relay,
        reference=reference.load(settings.reference_dir),
        clock=clock,
        calendar=calendar or WeekdayCalendar(),
    )


def create_service_app(runtime: Runtime, *, title: str, description: str) -> FastAPI:
    """A FastAPI app with the runtime's lifespan and the health routes."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start(runtime)
        try:
            yield
        finally:
            await stop(runtime)

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.runtime = runtime
    install(app, runtime)
    return app


async def start(runtime: Runtime) -> None:
    """Connect to NATS and PostgreSQL (retrying), declare the stream, start relay and consumers."""
    deadline = asyncio.get_running_loop().time() + runtime.settings.startup_timeout_seconds
    await _retry_until(deadline, "PostgreSQL", lambda: ping(runtime.engine))
    await _retry_until(deadline, "NATS", runtime.broker.connect)
    check_server(runtime.broker.connection)
    js = runtime.broker.connection.jetstream()
    await ensure_stream(js, runtime.settings)
    await runtime.broker.start()
    runtime.tasks.append(asyncio.create_task(runtime.relay.run(), name=f"{runtime.name}-relay"))
    for consumer in runtime.consumers:
        await ensure_consumer(js, runtime.settings.stream_name, consumer.config)
        runtime.consumer_tasks.append(asyncio.create_task(consumer.run(js)))
    log.info("%s started", runtime.name)


async def stop(runtime: Runtime) -> None:
    """Let consumers finish their batch, stop the relay, close; unsent rows stay in the outbox."""
    for consumer in runtime.consumers:
        consumer.stop()
    if runtime.consumer_tasks:
        _, pending = await asyncio.wait(runtime.consumer_tasks, timeout=STOP_GRACE_SECONDS)
        runtime.tasks.extend(pending)
        runtime.consumer_tasks.clear()
    for task in runtime.tasks:
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)
    runtime.tasks.clear()
    await runtime.broker.stop()
    await runtime.engine.dispose()


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
