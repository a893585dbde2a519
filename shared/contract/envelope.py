"""The CloudEvents 1.0 structured-mode envelope every canonical event travels in."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from minqing.shared.contract.events import EVENTS_BY_TYPE, UPCASTERS, Event
from minqing.shared.domain.ids import new_id

TYPE_PREFIX = "minqing."
CONTENT_TYPE = "application/cloudevents+json"


class Envelope(BaseModel):
    """One CloudEvent: context attributes, our extension attributes and the JSON ``data``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    time: AwareDatetime
    datacontenttype: str = Field("application/json", pattern=r"^application/json(\s*;.*)?$")
    data: dict[str, Any]
    dataversion: int = Field(ge=1)
    correlationid: str = Field(min_length=1)
    causationid: str | None = None
    actor: str = Field(min_length=1)
    # The CloudEvents distributed-tracing extension: the W3C trace context of the span that
    # wrote the event (shared/service/tracing.py); absent when tracing is off. A malformed
    # value is ignored (the event starts a new trace), never a reason to refuse the event.
    traceparent: str | None = Field(None, description="W3C traceparent of the writing span")
    tracestate: str | None = Field(None, description="W3C tracestate of the writing span")

    @field_validator("traceparent", "tracestate", mode="before")
    @classmethod
    def _trace_context_or_none(cls, value: object) -> object:
        """Trace context that is not a string is dropped, not a reason to refuse the event."""
        return value if isinstance(value, str) else None

    @property
    def short_type(self) -> str:
        """The type without the ``minqing.`` prefix, e.g. ``issue.reported``."""
        return self.type.removeprefix(TYPE_PREFIX)

    def to_json(self) -> bytes:
        """Structured-mode JSON; absent optional attributes are left out, not null."""
        return self.model_dump_json(exclude_none=True).encode()


class UnreadableEvent(ValueError):
    """A message that is not a valid canonical event; the reason says why."""


class NewerVersion(Exception):
    """An event of a ``dataversion`` newer than this code reads: wait for a newer consumer."""


def wrap(
    event: Event,
    *,
    issue_id: str,
    service: str,
    actor: str,
    time: datetime,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    cause: Envelope | None = None,
) -> Envelope:
    """Put one event into a new envelope with a fresh id.

    With ``cause`` (the event this one reacts to), the correlation id is inherited and the
    causation id is the cause's id.
    """
    event_id = new_id()
    if cause is not None:
        correlation_id, causation_id = cause.correlationid, cause.id
    return Envelope(
        specversion="1.0",
        id=event_id,
        source=f"/minqing/{service}",
        type=TYPE_PREFIX + event.TYPE,
        subject=issue_id,
        time=time,
        data=event.model_dump(mode="json"),
        dataversion=event.VERSION,
        correlationid=correlation_id or event_id,
        causationid=causation_id,
        actor=actor,
    )


def parse(raw: bytes) -> Envelope:
    """Read a structured-mode CloudEvent, or raise ``UnreadableEvent`` with the reason."""
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as exc:
        raise UnreadableEvent(f"not a valid event envelope: {_summary(exc)}") from exc
    if b"\\u0000" in raw and _has_nul(envelope.model_dump()):
        raise UnreadableEvent("the event holds a NUL character (\\u0000), which cannot be stored")
    return envelope


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def event_class(type_: str) -> type[Event] | None:
    """The class of a CloudEvents ``type`` such as ``minqing.issue.reported``, if ours."""
    if not type_.startswith(TYPE_PREFIX):
        return None
    return EVENTS_BY_TYPE.get(type_.removeprefix(TYPE_PREFIX))


def decode(envelope: Envelope) -> Event | None:
    """The typed event inside an envelope, read tolerantly; ``None`` for an unknown type.

    Fields this code does not know are ignored; an older ``dataversion`` is upcast step by
    step; a newer one raises ``NewerVersion`` (the event waits for a consumer that reads it).
    """
    return read(envelope.type, envelope.dataversion, envelope.data)


@cache
def _field_names(cls: type[Event]) -> frozenset[str]:
    return frozenset(cls.model_fields)


def read(type_: str, dataversion: int, data: dict[str, Any]) -> Event | None:
    """``decode`` for an event stored apart from its envelope (type, version, data)."""
    cls = event_class(type_)
    if cls is None:
        return None
    data = upcast(cls.TYPE, dataversion, data, cls.VERSION)
    known = _field_names(cls)
    if not data.keys() <= known:  # fields from a newer producer: left out, not refused
        data = {k: v for k, v in data.items() if k in known}
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise UnreadableEvent(f"invalid data for {type_}: {_summary(exc)}") from exc


def upcast(type_: str, version: int, data: dict[str, Any], target: int) -> dict[str, Any]:
    """``data`` of ``version`` brought to ``target`` by the registered upcasters."""
    if version > target:
        raise NewerVersion(
            f"minqing.{type_} dataversion {version} is newer than this consumer reads "
            f"({target}): waiting for a newer consumer"
        )
    while version < target:
        step = UPCASTERS.get((type_, version))
        if step is None:
            raise UnreadableEvent(f"minqing.{type_} dataversion {version} cannot be upcast")
        data, version = step(data), version + 1
    return data


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
    )
