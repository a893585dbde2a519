"""Who emits and who consumes which event, and the AsyncAPI document generated from it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from faststream.nats import JStream, NatsBroker, PullSub
from faststream.specification import AsyncAPI
from pydantic import BaseModel, create_model

from shared.envelope import TYPE_PREFIX, Envelope
from shared.events import (
    EVENT_CLASSES,
    Event,
    IssueAssigned,
    IssueDeadlineRecomputed,
    IssueDuplicateReported,
    IssueDuplicateSplit,
    IssueEscalated,
    IssueLookbackDueRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueOverdue,
    IssueReported,
    IssueResolved,
)
from shared.settings import ServiceName, Settings

EMITTED_BY: dict[type[Event], ServiceName] = {
    IssueReported: "intake",
    IssueDuplicateReported: "intake",
    IssueDuplicateSplit: "intake",
    IssueAssigned: "assignment",
    IssueDeadlineRecomputed: "assignment",
    IssueLookbackDueRecomputed: "followup",
    IssueOverdue: "followup",
    IssueEscalated: "followup",
    IssueResolved: "followup",
    IssueLookbackPassed: "followup",
    IssueLookbackFailed: "followup",
}


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


def asyncapi(settings: Settings, consumers: Consumers) -> dict[str, Any]:
    """The AsyncAPI 3 document of the canonical stream: channels, publishers, consumers."""
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
    spec = AsyncAPI(
        broker,
        title="Minqing event contract",
        version="1.0.0",
        description="CloudEvents 1.0 structured mode on JetStream; Nats-Msg-Id = event id.",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    return document


def _document_consumer(
    broker: NatsBroker, stream: JStream, settings: Settings, service: str, cls: type[Event]
) -> None:
    model = cloudevent_model(cls)

    async def handler(event: BaseModel) -> None:
        """Documentation only: the real consumer is shared.subscription.PullConsumer."""

    handler.__annotations__ = {"event": model, "return": None}  # the schema FastStream shows

    broker.subscriber(
        f"{settings.subject_prefix}.{cls.TYPE}",
        stream=stream,
        durable=service,
        pull_sub=PullSub(batch_size=settings.consumer_batch_size, batch=False),
        title=f"{service} consumes {TYPE_PREFIX}{cls.TYPE}",
    )(handler)
