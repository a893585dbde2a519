"""NATS JetStream: streams, pipelined publishing for the relay, and durable pull consumers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.errors import BadSubjectError, MaxPayloadError
from nats.js.api import PubAck, StorageType, StreamConfig, StreamInfo
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from minqing.shared.contract.envelope import CONTENT_TYPE
from minqing.shared.messaging.outbox import Outgoing, PermanentPublishError, PublishBatch
from minqing.shared.service.settings import Settings

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 10.0
PUBLISH_WINDOW = 1000  # publishes in flight at once


def stream_config(settings: Settings) -> StreamConfig:
    """The system-wide log: file storage, kept forever, de-duplicated by ``Nats-Msg-Id``."""
    return StreamConfig(
        name=settings.stream_name,
        subjects=[f"{settings.subject_prefix}.>"],
        storage=StorageType.FILE,
        max_age=0,
        duplicate_window=settings.duplicate_window_seconds,
        num_replicas=settings.stream_replicas,
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


class StreamMismatch(RuntimeError):
    """An existing stream's settings differ from what this service needs."""


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> StreamInfo:
    """Create a missing stream as ``config`` says; returns its info. An existing stream
    whose settings differ raises :class:`StreamMismatch` naming each difference: replicas
    of a service that disagree must not rewrite a shared stream in turn, so a change of
    settings is the operator's deliberate step (the stream edited, or the setting fixed)."""
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        info = await js.add_stream(config)
        log.info(
            "created stream %s (%d replicas, created %s)",
            config.name,
            config.num_replicas or 1,
            info.created,
        )
        return info
    if differences := stream_differences(info.config, config):
        raise StreamMismatch(
            f"stream {config.name} differs from what this service needs: "
            + "; ".join(differences)
            + ". Make the settings (MINQING_*) match the stream, or change the stream"
            " (for example `nats stream edit`) before starting"
        )
    return info


def ingress_stream_config(settings: Settings) -> StreamConfig:
    """Department systems' reports: kept as the canonical log is, larger messages allowed
    than the consumer accepts, so an oversized one reaches it and is dead-lettered."""
    return StreamConfig(
        name=settings.ingress_stream_name,
        subjects=[f"{settings.ingress_subject_prefix}.>"],
        storage=StorageType.FILE,
        max_age=0,
        max_msg_size=settings.ingress_stream_max_msg_bytes,
        duplicate_window=settings.duplicate_window_seconds,
        num_replicas=settings.stream_replicas,
    )


def outcomes_stream_config(settings: Settings) -> StreamConfig:
    """The outcome of every ingress message, kept for a while for systems that were away."""
    return StreamConfig(
        name=settings.outcomes_stream_name,
        subjects=[f"{settings.outcomes_subject_prefix}.>"],
        storage=StorageType.FILE,
        max_age=settings.outcomes_max_age_days * 86400,
        duplicate_window=settings.duplicate_window_seconds,
        num_replicas=settings.stream_replicas,
    )


def dlq_stream_config(settings: Settings) -> StreamConfig:
    """Messages that cannot be accepted: original bytes and headers, and the reason."""
    return StreamConfig(
        name=settings.dlq_stream_name,
        subjects=[f"{settings.dlq_subject_prefix}.>"],
        storage=StorageType.FILE,
        max_age=settings.dead_letter_retention_days * 86400,
        duplicate_window=settings.duplicate_window_seconds,
        num_replicas=settings.stream_replicas,
    )


# What a service needs of a stream, and the setting that says it (None: not a setting).
CHECKED: dict[str, str | None] = {
    "subjects": "MINQING_*_SUBJECT_PREFIX",
    "storage": None,
    "num_replicas": "MINQING_STREAM_REPLICAS",
    "max_age": "MINQING_OUTCOMES_MAX_AGE_DAYS, MINQING_DEAD_LETTER_RETENTION_DAYS",
    "duplicate_window": "MINQING_DUPLICATE_WINDOW_SECONDS",
    "max_msg_size": "MINQING_INGRESS_STREAM_MAX_MSG_BYTES",
}


def stream_differences(current: StreamConfig, wanted: StreamConfig) -> list[str]:
    """Each setting in which the stream ``current`` differs from ``wanted``, said plainly."""
    found = []
    for name, setting in CHECKED.items():
        have, need = _normal(name, getattr(current, name)), _normal(name, getattr(wanted, name))
        if have != need:
            where = f" ({setting})" if setting else ""
            found.append(f"{name} is {_shown(have)}, this service needs {_shown(need)}{where}")
    return found


def _normal(name: str, value: Any) -> object:
    """A setting as compared: the server's defaults for what the service leaves unset."""
    if name == "num_replicas":
        return value or 1
    if name == "max_msg_size":
        return -1 if value in (None, 0) else value
    if name in ("max_age", "duplicate_window"):
        return float(value or 0)
    if name == "storage":
        return StorageType(value).value if value is not None else StorageType.FILE.value
    if name == "subjects":
        return sorted(value or [])
    return value


def _shown(value: object) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def stream_created(info: StreamInfo) -> datetime:
    """When this incarnation of the stream was created: a re-created stream differs."""
    if info.created is None:
        raise RuntimeError(f"NATS did not report when stream {info.config.name} was created")
    return info.created


def batch_publisher(js: JetStreamContext, stream: str) -> PublishBatch:
    """Publishes pipelined with ``publish_async``, ``Nats-Msg-Id`` = event id; acks in order.
    A message naming its own stream and headers goes there with them."""

    async def publish(batch: Sequence[Outgoing]) -> list[int | BaseException]:
        futures: list[asyncio.Future[PubAck] | BaseException] = []
        for message in batch:
            try:
                headers = {"content-type": CONTENT_TYPE} if message.headers is None else {}
                headers.update(message.headers or {})
                headers["Nats-Msg-Id"] = message.event_id
                futures.append(
                    await js.publish_async(
                        message.subject,
                        message.payload,
                        stream=message.stream or stream,
                        wait_stall=PUBLISH_TIMEOUT_SECONDS,
                        headers=headers,
                    )
                )
            except (MaxPayloadError, BadSubjectError) as exc:
                futures.append(PermanentPublishError(repr(exc)))
            except Exception as exc:
                futures.append(exc)
                break
        return [await _ack(f) for f in futures]

    return publish


async def _ack(future: asyncio.Future[PubAck] | BaseException) -> int | BaseException:
    if isinstance(future, BaseException):
        return future
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            ack = await future
    except APIError as exc:
        if exc.code == 400:  # the stream refuses this message, e.g. over its size limit
            return PermanentPublishError(repr(exc))
        return exc
    except Exception as exc:
        future.cancel()
        return exc
    return int(ack.seq)
