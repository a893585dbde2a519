"""Prometheus metrics of every service, served at ``GET /metrics``.

Counted as things happen: events applied by each consumer (by type) and the time each
batch took, outbox rows published (by event type, or by stream for the other streams), and
HTTP requests by method, route template and status. Read when scraped: each consumer's lag
(messages pending and unacknowledged at its last check), the outbox's backlog and the age
of its oldest unsent row, the dead letters in the table, and the database pool's use.

Each process keeps its own registry (tests run several apps in one process); a part of a
service with metrics of its own (the ingress channel) adds its registry to the answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Scraped:
    """What is read when scraped, besides the counters."""

    pending: dict[str, int] = field(default_factory=dict)  # consumer -> messages behind
    unsent: int = 0
    oldest_unsent: datetime | None = None
    dead_letters: list[tuple[str, str, int]] = field(default_factory=list)
    pool: dict[str, int] = field(default_factory=dict)  # size, checked_out, idle, overflow
    now: datetime | None = None


class ServiceMetrics:
    """The counters and gauges of one service process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._consumed = Counter(
            "minqing_events_consumed",
            "Events applied by a consumer, by consumer and type (redeliveries not counted).",
            ["consumer", "type"],
            registry=r,
        )
        self._again = Counter(
            "minqing_events_redelivered",
            "Messages a consumer received that were delivered before (a crash or a shutdown "
            "that did not acknowledge, an acknowledgement lost, a retry), by consumer.",
            ["consumer"],
            registry=r,
        )
        self._batches = Histogram(
            "minqing_consumer_batch_seconds",
            "Time to apply one fetched batch in its transaction, by consumer.",
            ["consumer"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._published = Counter(
            "minqing_messages_published",
            "Outbox rows published to NATS: canonical events by type, others by stream.",
            ["type"],
            registry=r,
        )
        self._http = Histogram(
            "minqing_http_request_seconds",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self._pending = Gauge(
            "minqing_consumer_pending",
            "Messages a consumer has yet to acknowledge (pending, in hand), at its last check.",
            ["consumer"],
            registry=r,
        )
        self._unsent = Gauge("minqing_outbox_unsent", "Outbox rows not yet published.", registry=r)
        self._oldest = Gauge(
            "minqing_outbox_oldest_unsent_seconds",
            "Age of the oldest outbox row not yet published (0 when none waits).",
            registry=r,
        )
        self._stored = Gauge(
            "minqing_dead_letters_stored",
            "Dead letters in this service's table now, by consumer and status (any process).",
            ["consumer", "status"],
            registry=r,
        )
        self._pool = Gauge(
            "minqing_db_pool_connections",
            "This process's database connections: pool size, checked out, idle, overflow.",
            ["state"],
            registry=r,
        )
        self.extra: list[CollectorRegistry] = []

    def consumed(self, consumer: str, types: Iterable[str], seconds: float) -> None:
        """A batch committed: the types of the events it applied, and how long it took."""
        for event_type in types:
            self._consumed.labels(consumer, event_type).inc()
        self._batches.labels(consumer).observe(seconds)

    def redelivered(self, consumer: str, count: int) -> None:
        self._again.labels(consumer).inc(count)

    def published(self, kinds: Sequence[str]) -> None:
        for kind in kinds:
            self._published.labels(kind).inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._http.labels(method, route, str(status)).observe(seconds)

    def exposition(self, scraped: Scraped) -> bytes:
        """The text format Prometheus scrapes."""
        self._pending.clear()
        for consumer, pending in scraped.pending.items():
            self._pending.labels(consumer).set(pending)
        self._unsent.set(scraped.unsent)
        oldest = scraped.oldest_unsent
        now = scraped.now
        self._oldest.set((now - oldest).total_seconds() if oldest and now else 0.0)
        self._stored.clear()
        for consumer, status, count in scraped.dead_letters:
            self._stored.labels(consumer, status).set(count)
        for state, count in scraped.pool.items():
            self._pool.labels(state).set(count)
        return b"".join(generate_latest(r) for r in (self.registry, *self.extra))


async def scrape(
    sessions: Callable[[], Any],
    plumbing: Any,
    pool: Any,
    pending: dict[str, int],
    now: Callable[[], Awaitable[datetime]] | None = None,
) -> Scraped:
    """Read what the gauges show from the database and the pool."""
    o, d = plumbing.outbox, plumbing.dead_letters
    waiting = (o.c.published_at.is_(None)) & (o.c.failed_reason.is_(None))
    async with sessions() as session:
        unsent, oldest, at = (
            await session.execute(
                select(func.count(), func.min(o.c.created_at), func.now()).where(waiting)
            )
        ).one()
        letters = await session.execute(
            select(d.c.consumer, d.c.status, func.count()).group_by(d.c.consumer, d.c.status)
        )
        stored = [(row[0], row[1], int(row[2])) for row in letters.all()]
    return Scraped(pending, int(unsent), oldest, stored, pool_use(pool), at)


def pool_use(pool: Any) -> dict[str, int]:
    """The pool's size and use (a QueuePool; other pools report nothing)."""
    if not isinstance(pool, QueuePool):
        return {}
    return {
        "size": pool.size(),
        "checked_out": pool.checkedout(),
        "idle": pool.checkedin(),
        "overflow": max(pool.overflow(), 0),
    }


class RequestTimer:
    """ASGI middleware: every HTTP request's time, by method, route template and status.
    The route template (``/api/v1/issues/{issue_id}``), never the path, keeps the labels
    few; a request no route matched counts as ``unmatched``."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.request(scope["method"], template, status, time.perf_counter() - started)
