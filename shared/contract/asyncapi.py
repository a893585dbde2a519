"""Who emits and who consumes which event, and the AsyncAPI document generated from it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from faststream.nats import JStream, NatsBroker, PullSub
from faststream.specification import AsyncAPI
from pydantic import BaseModel, create_model

from minqing.shared.contract.envelope import TYPE_PREFIX, Envelope
from minqing.shared.contract.events import EVENT_CLASSES, Event
from minqing.shared.service.settings import ServiceName, Settings

# Who emits each event type: what each class declares (``Event.EMITTED_BY``).
EMITTED_BY: dict[type[Event], ServiceName] = {cls: cls.EMITTED_BY for cls in EVENT_CLASSES}


@cache
def cloudevent_model(cls: type[Event]) -> type[BaseModel]:
    """The envelope with ``data`` typed as ``cls``: the message schema of one event type."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in Envelope.model_fields.items()
        if name != "data"
    }
    fields["data"] = (cls, ...)
    return create_model(f"{cls.__name__}CloudEvent", __doc__=cls.__doc__, **fields)


# Durable consumer name -> the event classes it consumes (derived from routing tables).
Consumers = Mapping[str, Sequence[type[Event]]]


@dataclass(frozen=True)
class Channel:
    """A channel beside the canonical stream (ingress, outcomes, dead letters): its subject
    (``{source}`` a parameter), stream, message schema, and who receives it (a durable
    consumer) or, if ``receiver`` is None, that a service publishes it."""

    address: str
    stream: str
    schema: type[BaseModel] | None
    title: str
    description: str
    receiver: str | None = None


def asyncapi(
    settings: Settings, consumers: Consumers, channels: Sequence[Channel] = ()
) -> dict[str, Any]:
    """The AsyncAPI 3 document: the canonical stream's channels, publishers and consumers,
    and the channels beside it (department systems' ingress, outcomes, dead letters)."""
    broker = NatsBroker(settings.nats_url)  # never connected: it only carries the documentation
    stream = JStream(settings.stream_name, declare=False)
    for cls in EVENT_CLASSES:
        broker.publisher(
            f"{settings.subject_prefix}.{cls.TYPE}",
            stream=stream,
            title=f"{EMITTED_BY[cls]}: {TYPE_PREFIX}{cls.TYPE}",
            description=f"{cls.__doc__} Emitted by {EMITTED_BY[cls]}; dataversion {cls.VERSION}.",
            schema=cloudevent_model(cls),
        )
    for durable, classes in consumers.items():
        for cls in classes:
            _document_consumer(broker, stream, settings, durable, cls)
    for channel in channels:
        _document_channel(broker, settings, channel)
    spec = AsyncAPI(
        broker,
        title="Minqing event contract",
        version="1.0.0",
        description="CloudEvents 1.0 structured mode on JetStream; Nats-Msg-Id = event id. "
        "Department systems send reports on the ingress stream and read every message's "
        "outcome on the outcomes stream.",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    for channel in document.get("channels", {}).values():
        for name in re.findall(r"\{(\w+)\}", channel["address"]):
            described = {"description": f"the {name} code, as in the reference data"}
            channel.setdefault("parameters", {}).setdefault(name, described)
    return document


def _document_consumer(
    broker: NatsBroker, stream: JStream, settings: Settings, service: str, cls: type[Event]
) -> None:
    model = cloudevent_model(cls)

    async def handler(event: BaseModel) -> None:
        """Documentation only: the real consumer is ``subscription.PullConsumer``."""

    handler.__annotations__ = {"event": model, "return": None}  # the schema FastStream shows

    broker.subscriber(
        f"{settings.subject_prefix}.{cls.TYPE}",
        stream=stream,
        durable=service,
        pull_sub=PullSub(batch_size=settings.consumer_batch_size, batch=False),
        title=f"{service} consumes {TYPE_PREFIX}{cls.TYPE}",
    )(handler)


def _document_channel(broker: NatsBroker, settings: Settings, channel: Channel) -> None:
    stream = JStream(channel.stream, declare=False)
    if channel.receiver is None:
        broker.publisher(
            channel.address,
            stream=stream,
            title=channel.title,
            description=channel.description,
            schema=channel.schema,
        )
        return

    async def handler(message: BaseModel) -> None:
        """Documentation only: the real consumer is ``subscription.PullConsumer``."""

    handler.__annotations__ = {"message": channel.schema, "return": None}
    broker.subscriber(
        channel.address,
        stream=stream,
        durable=channel.receiver,
        pull_sub=PullSub(batch_size=settings.consumer_batch_size, batch=False),
        title=channel.title,
        description=channel.description,
    )(handler)
