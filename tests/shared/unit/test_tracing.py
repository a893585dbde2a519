"""Tracing's configuration and trace context: where spans go, and what a message continues."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from minqing.shared.contract.envelope import Envelope, parse, wrap
from minqing.shared.contract.events import IssueReported
from minqing.shared.service import tracing
from minqing.shared.service.settings import Settings

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_tracing_is_off_unless_an_endpoint_is_configured() -> None:
    assert tracing.otlp_endpoint(settings(), {}) is None
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert tracing.otlp_endpoint(settings(), base) == "http://collector:4318/v1/traces"
    own = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/in", **base}
    assert tracing.otlp_endpoint(settings(), own) == "http://traces:4318/in"
    ours = settings(otlp_endpoint="http://ours:4318")
    assert tracing.otlp_endpoint(ours, own) == "http://ours:4318/v1/traces"
    assert tracing.otlp_endpoint(ours, {"OTEL_SDK_DISABLED": "true"}) is None
    assert tracing.otlp_endpoint(ours, {"OTEL_TRACES_EXPORTER": "none"}) is None


def test_without_tracing_an_app_has_no_tracing_middleware() -> None:
    assert not tracing.enabled()
    app = FastAPI()
    tracing.instrument(app)
    assert app.user_middleware == []


def envelope(**extension: str) -> Envelope:
    event = IssueReported(
        title="t", description="d", category="street_lights", village="shihu", source="x"
    )
    made = wrap(event, issue_id="01I", service="intake", actor="system:x", time=datetime.now(UTC))
    return made.model_copy(update=extension)


def test_a_message_continues_its_header_else_its_events_extension_else_nothing() -> None:
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    def continued(headers: dict[str, str], event: Envelope) -> str | None:
        context = tracing.parent_of(headers, event)
        if context is None:
            return None
        return format(trace.get_current_span(context).get_span_context().trace_id, "032x")

    assert continued({"traceparent": header}, envelope(traceparent=PARENT)) == header[3:35]
    assert continued({}, envelope(traceparent=PARENT)) == PARENT[3:35]
    assert continued({}, envelope()) is None
    assert continued({"traceparent": "garbage"}, envelope(traceparent="00-zz")) is None


def test_a_malformed_traceparent_does_not_make_an_event_unreadable() -> None:
    raw = envelope(traceparent="not a trace context", tracestate="x" * 2000).to_json()
    assert parse(raw).traceparent == "not a trace context"


def test_the_relay_reads_the_context_of_a_row_as_written() -> None:
    payload = envelope(traceparent=PARENT, tracestate="vendor=1").to_json()
    context = tracing._from_payload(payload)
    assert context is not None
    span = trace.get_current_span(context).get_span_context()
    assert format(span.span_id, "016x") == PARENT[36:52]
    assert span.trace_state.get("vendor") == "1"
    assert tracing._from_payload(envelope().to_json()) is None


def test_trace_context_that_is_not_a_string_is_dropped() -> None:
    raw = envelope().to_json().replace(b'"actor"', b'"traceparent":7,"tracestate":[1],"actor"')
    read = parse(raw)
    assert read.traceparent is None and read.tracestate is None


async def test_a_request_span_holds_the_route_template_and_no_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        app = FastAPI()

        @app.get("/api/v1/feedback/{token}")
        async def feedback(token: str) -> dict[str, str]:
            return {}

        tracing.instrument(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"cookie": "minqing_session=s3cret-cookie"}
            await client.get("/api/v1/feedback/Tok3n-xyz?q=Zhang+San", headers=headers)
            await client.get("/readyz")
    finally:
        tracing.install(None)
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /api/v1/feedback/{token}"
    shown = f"{span.name} {dict(span.attributes or {})}"
    for secret in ("Tok3n-xyz", "Zhang", "s3cret-cookie"):
        assert secret not in shown
    assert (span.attributes or {})["http.route"] == "/api/v1/feedback/{token}"
