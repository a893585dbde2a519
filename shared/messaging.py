"""NATS JetStream through FastStream: the canonical stream, publishing and batch consumers."""

from __future__ import annotations

import logging

from faststream import AckPolicy, Context
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from shared.consumer import BatchConsumer
from shared.envelope import CONTENT_TYPE
from shared.outbox import Publish
from shared.settings import Settings

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 10.0
# With little traffic a fetch returns after this long with what it has, so events are
# applied within ~0.2 s; under load batches fill up long before.
FETCH_WAIT_SECONDS = 0.2


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


def subscribe(
    broker: NatsBroker, settings: Settings, durable: str, consumer: BatchConsumer
) -> None:
    """A durable pull consumer of every canonical event, handled in batches, acked manually.

    Redelivery is unlimited on the server (``max_deliver=-1``): the consumer itself counts
    attempts and dead-letters, so nothing is silently left behind by the server.
    """

    @broker.subscriber(
        f"{settings.subject_prefix}.>",
        stream=JStream(settings.stream_name, declare=False),
        durable=durable,
        pull_sub=PullSub(
            batch_size=settings.consumer_batch_size, timeout=FETCH_WAIT_SECONDS, batch=True
        ),
        ack_policy=AckPolicy.MANUAL,
        config=ConsumerConfig(
            durable_name=durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.consumer_ack_wait_seconds,
            max_deliver=-1,
            max_ack_pending=settings.consumer_batch_size * 10,
        ),
        title=f"{durable}:events",
    )
    async def on_events(body: list[object], message: NatsBatchMessage = Context("message")) -> None:
        await consumer.consume(message.raw_message)
