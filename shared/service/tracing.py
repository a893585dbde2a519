"""OpenTelemetry traces: one matter followed from the report to the projection as one trace.

The spans, each the child of the one before:

- ``POST /api/v1/reports`` (SERVER), by the ASGI instrumentation: named by the route
  template, never the path; the path, query and full URL attributes hold the template too.
- ``outbox write`` (INTERNAL): the transaction that records events writes them into the
  outbox. Each event gets this span's W3C context as the CloudEvents distributed-tracing
  extension attributes ``traceparent`` and ``tracestate`` (``shared/contract/envelope.py``).
- ``publish <subject>`` (PRODUCER): the relay publishes the row; its parent is the event's
  ``traceparent``, and its own context goes with the message as NATS headers
  ``traceparent``/``tracestate`` (the body is the row as written, untouched).
- ``process <subject>`` (CONSUMER), one per event in each durable consumer: the child of the
  message's ``traceparent`` header, else of the event's ``traceparent`` attribute (a
  department system's event), else a new root. The events its handler records are written
  under an ``outbox write`` span that is its child, and so on to the projection's
  consumers.

Off unless an OTLP endpoint is configured (``configure``): no middleware, and each hook is one
check of a module variable per batch, transaction or request. Exported by OTLP/HTTP in
batches (``OTEL_BSP_*``); sampled as ``OTEL_TRACES_SAMPLER`` says (default: every trace, or
the caller's decision).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from minqing.shared.service import logs

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from minqing.shared.contract.envelope import Envelope
    from minqing.shared.messaging.consumer import ApplyBatch, Delivery, Outcome
    from minqing.shared.messaging.outbox import Outgoing, PublishBatch
    from minqing.shared.service.settings import Settings

W3C = TraceContextTextMapPropagator()
_TRACEPARENT = re.compile(rb'"traceparent":"([0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})"')
_TRACESTATE = re.compile(rb'"tracestate":"([^"\\]{1,512})"')
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
# Probes and scrapes, answered every few seconds: no spans (and access lines at DEBUG).
UNTRACED_PATHS = ("/healthz", "/readyz", "/metrics")


class _State:
    provider: TracerProvider | None = None
    tracer: Tracer | None = None


_state = _State()
# The CONSUMER span of each event of the batch being applied, by event id.
_consuming: ContextVar[Mapping[str, Span] | None] = ContextVar("minqing_consuming", default=None)


def enabled() -> bool:
    """Whether this process traces (an exporter is configured, or a test installed one)."""
    return _state.tracer is not None


def install(provider: TracerProvider | None) -> None:
    """Trace with ``provider`` from now on (``None``: stop tracing). Apps created while it is
    installed get the HTTP middleware."""
    _state.provider = provider
    _state.tracer = None if provider is None else provider.get_tracer("minqing")


def otlp_endpoint(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """Where spans go: ``MINQING_OTLP_ENDPOINT`` (the collector's base URL, ``/v1/traces``
    appended), else the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (as is) or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` appended); ``None``: tracing is off, as it
    is with ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if settings.otlp_endpoint:
        return settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    if traces := environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return traces
    if base := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return base.rstrip("/") + "/v1/traces"
    return None


def configure(settings: Settings, service: str) -> bool:
    """Turn tracing on for this process if an OTLP endpoint is configured (``otlp_endpoint``);
    returns whether it is on. The service is named ``OTEL_SERVICE_NAME``, else
    ``minqing-<service>``; ``OTEL_RESOURCE_ATTRIBUTES`` adds to it. Spans still buffered
    are sent when the process exits."""
    endpoint = otlp_endpoint(settings, os.environ)
    if endpoint is None:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or f"minqing-{service}"
    resource = Resource.create({"service.name": name, "service.namespace": "minqing"})
    provider = SdkTracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    install(provider)
    return True


# ------------------------------------------------------------------------------ carriers


def carrier(span: Span) -> dict[str, str]:
    """``traceparent`` (and ``tracestate`` if any) of ``span``, as W3C headers."""
    headers: dict[str, str] = {}
    W3C.inject(headers, context=trace.set_span_in_context(span))
    return headers


def parent_of(headers: Mapping[str, str], envelope: Envelope | None = None) -> Context | None:
    """The context a message continues: its ``traceparent`` header, else its event's
    ``traceparent`` extension attribute; ``None`` (a new root) when neither is valid."""
    for source in (_lower(headers), _attributes(envelope)):
        if source.get("traceparent"):
            context = W3C.extract(source)
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
    return None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}


def _attributes(envelope: Envelope | None) -> dict[str, str]:
    if envelope is None or not envelope.traceparent:
        return {}
    found = {"traceparent": envelope.traceparent}
    if envelope.tracestate:
        found["tracestate"] = envelope.tracestate
    return found


def _from_payload(payload: bytes) -> Context | None:
    """The context of an event as stored in the outbox (its ``traceparent`` attribute)."""
    found = _TRACEPARENT.search(payload)
    if found is None:
        return None
    headers = {"traceparent": found.group(1).decode()}
    if state := _TRACESTATE.search(payload):
        headers["tracestate"] = state.group(1).decode()
    return parent_of(headers)


# ------------------------------------------------------------------------------ hooks


@contextmanager
def outbox_write(envelopes: Sequence[Envelope], service: str) -> Iterator[Sequence[Envelope]]:
    """Around a transaction's write of ``envelopes`` into the outbox: yields them as they
    are written. Traced, one ``outbox write`` span per context the events were recorded in
    (the request's span; in a consumer, the span of the event that caused each), and each
    event carries its span's context as ``traceparent``/``tracestate``."""
    logs.note_recorded(envelopes)
    tracer = _state.tracer
    if tracer is None:
        yield envelopes
        return
    consuming = _consuming.get() or {}
    spans: dict[int, tuple[Span, dict[str, str], list[str]]] = {}
    stamped: list[Envelope] = []
    for envelope in envelopes:
        cause = consuming.get(envelope.causationid or "") or consuming.get(envelope.correlationid)
        if (key := id(cause)) not in spans:
            parent = trace.set_span_in_context(cause) if cause is not None else None
            span = tracer.start_span("outbox write", context=parent, kind=SpanKind.INTERNAL)
            spans[key] = (span, carrier(span), [])
        span, headers, ids = spans[key]
        ids.append(envelope.id)
        context = {
            "traceparent": headers.get("traceparent"),
            "tracestate": headers.get("tracestate"),
        }
        stamped.append(envelope.model_copy(update=context))
    for span, _, ids in spans.values():
        span.set_attributes(
            {
                "minqing.service": service,
                "minqing.event_ids": ids,
                "messaging.batch.message_count": len(ids),
            }
        )
    try:
        yield stamped
    except BaseException as exc:
        for span, _, _ in spans.values():
            span.set_status(StatusCode.ERROR, type(exc).__name__)
        raise
    finally:
        for span, _, _ in spans.values():
            span.end()


def publishing(publish: PublishBatch, service: str) -> PublishBatch:
    """The relay's publish function, with a PRODUCER span per canonical event when traced
    (the child of the event's ``traceparent``; its context goes in the message's headers).
    Messages for other streams (outcomes, dead letters) are published as they are."""

    async def traced(batch: Sequence[Outgoing]) -> list[int | BaseException]:
        tracer = _state.tracer
        if tracer is None:
            return await publish(batch)
        spans: list[Span | None] = []
        sent: list[Outgoing] = []
        for message in batch:
            if message.stream is not None:
                spans.append(None)
                sent.append(message)
                continue
            span = tracer.start_span(
                f"publish {message.subject}",
                context=_from_payload(message.payload),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "publish",
                    "messaging.destination.name": message.subject,
                    "messaging.message.id": message.event_id,
                    "minqing.service": service,
                },
            )
            spans.append(span)
            headers = {"content-type": CLOUDEVENTS_CONTENT_TYPE, **(message.headers or {})}
            sent.append(dataclasses.replace(message, headers={**headers, **carrier(span)}))
        results: list[int | BaseException] = []
        try:
            results = await publish(sent)
        except BaseException as exc:
            results = [exc] * len(sent)
            raise
        finally:
            for n, traced_span in enumerate(spans):  # a batch cut short: the rest unsent
                if traced_span is not None:
                    result = results[n] if n < len(results) else None
                    if result is None or isinstance(result, BaseException):
                        why = "not sent" if result is None else type(result).__name__
                        traced_span.set_status(StatusCode.ERROR, why)
                    traced_span.end()
        return results

    return traced


def consuming(consumer: str, apply_batch: ApplyBatch) -> ApplyBatch:
    """A consumer's batch function, with a CONSUMER span per event when traced (the child of
    the message's or the event's ``traceparent``); the events its handlers record are
    written under these spans (``outbox_write``). An event not applied (dead-lettered,
    waiting) ends its span with an error status and the reason's code."""

    async def traced(
        session: AsyncSession, deliveries: Sequence[Delivery]
    ) -> Mapping[str, Outcome]:
        tracer = _state.tracer
        if tracer is None or not deliveries:
            return await apply_batch(session, deliveries)
        spans = {d.envelope.id: _consumer_span(tracer, consumer, d) for d in deliveries}
        # What a handler records names its cause (causationid), or, for a message that is
        # not one of our events (a department's report), its correlation id.
        found = dict(spans)
        for d in deliveries:
            found.setdefault(d.envelope.correlationid, spans[d.envelope.id])
        token = _consuming.set(found)
        try:
            outcomes = await apply_batch(session, deliveries)
        except BaseException as exc:
            for span in spans.values():
                span.set_status(StatusCode.ERROR, type(exc).__name__)
                span.end()
            raise
        finally:
            _consuming.reset(token)
        for event_id, span in spans.items():
            if (outcome := outcomes.get(event_id)) is not None:
                why = outcome.code or ("waiting" if outcome.waiting else "dead-lettered")
                span.set_status(StatusCode.ERROR, why)
            span.end()
        return outcomes

    return traced


def _consumer_span(tracer: Tracer, consumer: str, delivery: Delivery) -> Span:
    envelope = delivery.envelope
    return tracer.start_span(
        f"process {delivery.subject}",
        context=parent_of(delivery.headers, envelope),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": delivery.subject,
            "messaging.consumer.group.name": consumer,
            "messaging.message.id": envelope.id,
            "cloudevents.event_id": envelope.id,
            "cloudevents.event_type": envelope.type,
            "cloudevents.event_subject": envelope.subject,
        },
    )


class handling:
    """``with handling(envelope):`` around one event's handler in a consumer: log lines
    name the event, and its CONSUMER span (if traced) is the current span."""

    __slots__ = ("_context", "_envelope", "_event")

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope
        self._context: object | None = None

    def __enter__(self) -> None:
        self._event = logs.EVENT.set(self._envelope)
        consuming = _consuming.get()
        span = consuming.get(self._envelope.id) if consuming else None
        if span is not None:
            self._context = otel_context.attach(trace.set_span_in_context(span))

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            otel_context.detach(self._context)  # type: ignore[arg-type]
            self._context = None
        logs.EVENT.reset(self._event)


# ------------------------------------------------------------------------------ HTTP


def instrument(app: FastAPI) -> None:
    """When traced, add the OpenTelemetry ASGI middleware to ``app`` (outermost): a SERVER
    span per request, named ``<method> <route template>`` once the router has matched it;
    its path, query and URL attributes hold the template, never the path (an id or a
    feedback token in a path, a search text in a query never becomes an attribute). The
    per-message ``send``/``receive`` spans and probes (``UNTRACED_PATHS``) are left out."""
    if _state.provider is None:
        return
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.util.http import parse_excluded_urls
    from starlette.middleware import Middleware

    class WithoutHeaders(OpenTelemetryMiddleware):
        """The instrumentation, capturing no header whatever OTEL_* variables say."""

        def __init__(self, app: ASGIApp, **options: Any) -> None:
            super().__init__(app, **options)
            self.http_capture_headers_server_request = None
            self.http_capture_headers_server_response = None

    app.user_middleware.append(Middleware(_RouteNamer))  # innermost: sees the route matched
    app.add_middleware(
        WithoutHeaders,  # type: ignore[arg-type]  # an ASGI app class; typed loosely upstream
        excluded_urls=parse_excluded_urls(",".join(f"{p}$" for p in UNTRACED_PATHS)),
        default_span_details=_unmatched,
        exclude_spans=["receive", "send"],
        tracer_provider=_state.provider,
    )


def _unmatched(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The span's name and attributes until the route is known (and if none matches)."""
    return str(scope.get("method") or "HTTP"), _url_attributes(scope, "unmatched")


def _url_attributes(scope: Mapping[str, Any], template: str) -> dict[str, Any]:
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
    attributes: dict[str, Any] = {
        "http.target": template,
        "url.path": template,
        "http.url": f"{scope.get('scheme', 'http')}://{host}{template}",
    }
    if scope.get("query_string"):
        attributes["url.query"] = "(not recorded)"
    return attributes


class _RouteNamer:
    """Names the request's SERVER span by its route template as the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = trace.get_current_span()
        if scope["type"] != "http" or not span.is_recording():
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                template = getattr(scope.get("route"), "path", None)
                if isinstance(template, str) and template:
                    span.update_name(f"{scope['method']} {template}")
                    span.set_attributes(
                        {"http.route": template, **_url_attributes(scope, template)}
                    )
            await send(message)

        await self.app(scope, receive, sending)
