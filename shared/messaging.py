"""NATS JetStream through FastStream: the canonical stream, publishing and batch consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.js.api import AckPolicy as AckPolicyApi
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from shared.consumer import BatchConsumer
from shared.envelope import CONTENT_TYPE
from shared.outbox import Publish
from shared.settings import Settings

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 10.0
# How long one fetch waits when nothing is available; anything that arrives is returned
# at once, so this bounds only how quickly an idle consumer notices it should stop.
FETCH_WAIT_SECONDS = 1.0


def make_broker(settings: Settings) -> NatsBroker:
    """A broker whose per-message logs are at DEBUG: our own code logs what matters."""
    return NatsBroker(
        settings.nats_url,
        log_level=logging.DEBUG,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
    )


def stream_config(settings: Settings) -> StreamConfig:
    """The system-wide log: file storage, kept forever, de-duplicated by ``Nats-Msg-Id``."""
    return StreamConfig(
        name=settings.stream_name,
        subjects=[f"{settings.subject_prefix}.>"],
        storage=StorageType.FILE,
        max_age=0,
        duplicate_window=settings.duplicate_window_seconds,
    )


MIN_SERVER_VERSION = (2, 10)  # consumers filtered to several subjects (filter_subjects)


class UnsupportedServer(RuntimeError):
    """The NATS server is too old for this system's consumers."""


def check_server(connection: Client) -> None:
    """Refuse servers before 2.10: they ignore ``filter_subjects`` and deliver everything."""
    version = connection.connected_server_version
    if (version.major, version.minor) < MIN_SERVER_VERSION:
        wanted = ".".join(map(str, MIN_SERVER_VERSION))
        found = f"{version.major}.{version.minor}.{version.patch}"
        raise UnsupportedServer(f"NATS server {found} is too old: {wanted} or newer is needed")


async def ensure_stream(js: JetStreamContext, settings: Settings) -> None:
    """Create the canonical stream, or bring an existing one to our configuration."""
    config = stream_config(settings)
    try:
        await js.stream_info(settings.stream_name)
    except NotFoundError:
        await js.add_stream(config)
        log.info("created stream %s", settings.stream_name)
        return
    await js.update_stream(config)


def publisher(broker: NatsBroker, settings: Settings) -> Publish:
    """A publish function for the outbox relay: waits for the stream's ack, sets the id."""

    async def publish(subject: str, payload: bytes, message_id: str) -> int:
        ack = await broker.publish(
            payload,
            subject,
            headers={"Nats-Msg-Id": message_id, "content-type": CONTENT_TYPE},
            correlation_id=message_id,
            stream=settings.stream_name,
            timeout=PUBLISH_TIMEOUT_SECONDS,
        )
        return int(ack.seq)

    return publish


def consumer_config(
    settings: Settings, durable: str, types: Sequence[str] | None = None
) -> ConsumerConfig:
    """A durable pull consumer of the given event types (all canonical events if ``None``).

    Redelivery is unlimited on the server (``max_deliver=-1``): the consumer itself counts
    attempts and dead-letters, so nothing is silently left behind by the server.
    """
    subjects = [f"{settings.subject_prefix}.{t}" for t in types or [">"]]
    return ConsumerConfig(
        durable_name=durable,
        name=durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicyApi.EXPLICIT,
        ack_wait=settings.consumer_ack_wait_seconds,
        max_deliver=-1,
        max_ack_pending=settings.consumer_batch_size * 10,
        filter_subjects=subjects,
    )


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer, or update it when its configuration changed."""
    await js.add_consumer(stream, config=config)


class PullConsumer:
    """Fetches batches from a durable pull consumer and hands them to a ``BatchConsumer``.

    Written on nats-py directly rather than FastStream's batch subscriber: that one keeps
    fetching until the batch is full or its timeout passes (latency at low traffic), and
    in 0.7.8 a plain ``asyncio.TimeoutError`` from nats-py escapes it, stalling the
    subscriber for its supervisor's back-off. ``fetch`` here returns as soon as anything is
    available, up to ``batch_size``.
    """

    def __init__(self, settings: Settings, config: ConsumerConfig, consumer: BatchConsumer) -> None:
        self._settings = settings
        self.config = config
        self._consumer = consumer
        self._stopping = asyncio.Event()

    async def run(self, js: JetStreamContext) -> None:
        """Consume until ``stop``; transient errors are logged and retried."""
        durable = self.config.durable_name
        subscription = await js.pull_subscribe_bind(
            durable=durable, stream=self._settings.stream_name
        )
        try:
            await self._fetch_until_stopped(subscription)
        finally:
            # A live subscription would hold the connection's drain for its full timeout.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _fetch_until_stopped(self, subscription: JetStreamContext.PullSubscription) -> None:
        durable = self.config.durable_name
        batch = self._settings.consumer_batch_size
        while not self._stopping.is_set():
            try:
                messages = await subscription.fetch(batch=batch, timeout=FETCH_WAIT_SECONDS)
            except TimeoutError:
                continue  # nothing new; nats-py's own TimeoutError subclasses this one
            except Exception as exc:
                log.warning("%s: fetch failed (%r); retrying", durable, exc)
                await asyncio.sleep(1.0)
                continue
            try:
                await self._consumer.consume(messages)
            except Exception:
                # e.g. the connection dropped while acking: unacked messages come back.
                log.exception("%s: batch not finished; it will be redelivered", durable)

    def stop(self) -> None:
        """Finish the batch in hand, then return from ``run``."""
        self._stopping.set()
