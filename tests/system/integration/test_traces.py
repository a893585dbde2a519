"""Traces: one matter followed from the report to the projection as one trace, over a real
NATS and a real PostgreSQL, the four services in one process with an in-memory exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import httpx
import nats
import pytest
from cloudevents.v1.http import from_json
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.followup.app import create_app as followup_app
from minqing.services.intake.app import create_app as intake_app
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.contract.envelope import CONTENT_TYPE, wrap
from minqing.shared.contract.events import IssueReported
from minqing.shared.domain.ids import new_id
from minqing.shared.service import tracing
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, serve, stream_messages
from tests.support.ingress import cloudevent, running_intake, structured
from tests.support.ingress import report as ingress_report

NAME, PHONE, ADDRESS = "Ouyang Cuihua", "13698765432", "7 Willow Lane"
DESCRIPTION = "The pump by the orchard has leaked for nine days"
REPORT = {
    "title": "Street lights out on Shiguan Road",
    "description": DESCRIPTION,
    "category": "street_lights",
    "village": "shihu",
    "source": "hotline_12345",
    "reporter": {"name": NAME, "phone": PHONE},
    "location": {"address": ADDRESS, "lat": 33.51, "lon": 119.21},
}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the apps this test creates: every span, as it ends, in memory."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    try:
        yield spans
    finally:
        tracing.install(None)
        provider.shutdown()


class Spans:
    """The finished spans, and the questions the tests ask of them."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.all = list(spans)

    def one(self, name: str, kind: SpanKind, **attributes: object) -> ReadableSpan:
        found = self.every(name, kind, **attributes)
        assert len(found) == 1, (name, attributes, [s.name for s in self.all])
        return found[0]

    def every(self, name: str, kind: SpanKind, **attributes: object) -> list[ReadableSpan]:
        return [
            s
            for s in self.all
            if s.name == name
            and s.kind == kind
            and all(
                (s.attributes or {}).get(k.replace("_", ".")) == v for k, v in attributes.items()
            )
        ]

    def children(self, parent: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
        return [
            s
            for s in self.all
            if s.parent is not None
            and s.parent.span_id == parent.context.span_id
            and (name is None or s.name == name)
        ]

    def written_with(self, event_id: str) -> ReadableSpan:
        [span] = [
            s
            for s in self.all
            if s.name == "outbox write"
            and event_id in tuple((s.attributes or {}).get("minqing.event_ids", ()))
        ]
        return span


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return (
        span.parent is not None
        and span.parent.span_id == parent.context.span_id
        and (span.context.trace_id == parent.context.trace_id)
    )


@pytest.fixture
async def town(
    settings: Settings, exporter: InMemorySpanExporter
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = {}
        for name, app in (
            ("intake", intake_app),
            ("assignment", assignment_app),
            ("followup", followup_app),
            ("projection", projection_app),
        ):
            clients[name] = await stack.enter_async_context(serve(app(settings)))
        yield clients


async def history(client: httpx.AsyncClient, issue_id: str) -> list[str]:
    response = await client.get(f"/api/v1/issues/{issue_id}/history")
    if response.status_code != 200:
        return []
    return [e["type"] for e in response.json()["events"] if "reporter_replied" not in e["type"]]


async def test_one_matter_is_one_trace_from_the_report_to_the_projection(
    town: dict[str, httpx.AsyncClient], settings: Settings, exporter: InMemorySpanExporter
) -> None:
    intake, followup, projection = town["intake"], town["followup"], town["projection"]
    created = await intake.post("/api/v1/reports", json=REPORT)
    assert created.status_code == 201, created.text
    issue_id, reported_id = created.json()["issue_id"], created.json()["event_id"]

    async def case() -> int:
        return (await followup.get(f"/api/v1/issues/{issue_id}/case")).status_code

    await eventually(lambda: history(projection, issue_id), lambda t: len(t) == 2)
    await eventually(case, lambda code: code == 200)
    resolved = await followup.post(
        f"/api/v1/issues/{issue_id}/resolution",
        json={"unit": "town_construction", "summary": "Replaced six lamps", "resolved_by": "wu"},
    )
    assert resolved.status_code == 201, resolved.text
    await eventually(lambda: history(projection, issue_id), lambda t: len(t) == 3)
    events = (await projection.get(f"/api/v1/issues/{issue_id}/history")).json()["events"]
    [assigned_id] = [e["id"] for e in events if e["type"] == "minqing.issue.assigned"]
    [resolved_id] = [e["id"] for e in events if e["type"] == "minqing.issue.resolved"]
    prefix = settings.subject_prefix

    async def spans_now() -> Spans:
        return Spans(exporter.get_finished_spans())

    def projected(spans: Spans, event_id: str) -> list[ReadableSpan]:
        consumers = [
            s
            for s in spans.every(f"process {prefix}.{_type(events, event_id)}", SpanKind.CONSUMER)
            if (s.attributes or {}).get("messaging.message.id") == event_id
        ]
        return [
            s
            for s in consumers
            if str((s.attributes or {}).get("messaging.consumer.group.name")).startswith(
                "projection"
            )
        ]

    spans = await eventually(spans_now, lambda s: len(projected(s, resolved_id)) >= 1)

    # The report: the request, its transaction's outbox write, the relay's publish...
    request = spans.one("POST /api/v1/reports", SpanKind.SERVER)
    assert request.parent is None
    trace_id = request.context.trace_id
    written = spans.written_with(reported_id)
    assert child_of(written, request)
    published = spans.one(
        f"publish {prefix}.issue.reported", SpanKind.PRODUCER, messaging_message_id=reported_id
    )
    assert child_of(published, written)
    # ... each consumer's span (assignment's, followup's, intake's own, the projection's)...
    consumed = [
        s
        for s in spans.every(f"process {prefix}.issue.reported", SpanKind.CONSUMER)
        if (s.attributes or {}).get("messaging.message.id") == reported_id
    ]
    groups = {str((s.attributes or {}).get("messaging.consumer.group.name")) for s in consumed}
    assert "assignment" in groups and "followup" in groups, groups
    assert any(g.startswith("projection") for g in groups), groups
    assert all(child_of(s, published) for s in consumed)
    # ... and what assignment recorded in turn, down to the projection: all one trace.
    [routing] = [
        s
        for s in consumed
        if (s.attributes or {}).get("messaging.consumer.group.name") == "assignment"
    ]
    written_assigned = spans.written_with(assigned_id)
    assert child_of(written_assigned, routing)
    published_assigned = spans.one(
        f"publish {prefix}.issue.assigned", SpanKind.PRODUCER, messaging_message_id=assigned_id
    )
    assert child_of(published_assigned, written_assigned)
    projected_assigned = projected(spans, assigned_id)
    assert projected_assigned and all(child_of(s, published_assigned) for s in projected_assigned)
    assert {s.context.trace_id for s in (written, published, *consumed, written_assigned)} == {
        trace_id
    }

    # The resolution is a request of its own: its trace goes from the request to the projection.
    resolution = spans.one("POST /api/v1/issues/{issue_id}/resolution", SpanKind.SERVER)
    written_resolved = spans.written_with(resolved_id)
    assert child_of(written_resolved, resolution)
    published_resolved = spans.one(
        f"publish {prefix}.issue.resolved", SpanKind.PRODUCER, messaging_message_id=resolved_id
    )
    assert child_of(published_resolved, written_resolved)
    assert all(child_of(s, published_resolved) for s in projected(spans, resolved_id))

    # Route templates name the spans; no id from a path, no personal data in any attribute.
    for span in spans.all:
        if span.kind == SpanKind.SERVER:
            assert issue_id not in span.name
            assert issue_id not in str(dict(span.attributes or {})), span.name
        shown = f"{span.name} {dict(span.attributes or {})}"
        for secret in (NAME, PHONE, ADDRESS, DESCRIPTION, "Replaced six lamps"):
            assert secret not in shown, (span.name, secret)

    # As published on NATS: the CloudEvents SDK reads the extension attributes from the body
    # (the outbox write's context); the headers carry the publish span's.
    messages = await stream_messages(settings)
    [message] = [m for m in messages if (m.headers or {}).get("Nats-Msg-Id") == reported_id]
    event = from_json(message.data)
    assert event["id"] == reported_id
    assert event["traceparent"] == _traceparent(written)
    assert (message.headers or {})["traceparent"] == _traceparent(published)


async def test_an_event_without_traceparent_is_processed_as_a_new_trace(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serve(assignment_app(settings)))
        projection = await stack.enter_async_context(serve(projection_app(settings)))
        # A report from outside our outbox, with no trace context at all
        issue_id = new_id()
        envelope = wrap(
            IssueReported(
                title="Street lights out on Shiguan Road",
                description="Dark for a week",
                category="street_lights",
                village="shihu",
                source="hotline_12345",
            ),
            issue_id=issue_id,
            service="intake",
            actor="system:hotline_12345",
            time=datetime.now(UTC),
        )
        assert envelope.traceparent is None and b"traceparent" not in envelope.to_json()
        connection = await nats.connect(settings.nats_url)
        try:
            js = connection.jetstream()
            await js.publish(
                f"{settings.subject_prefix}.issue.reported",
                envelope.to_json(),
                stream=settings.stream_name,
                headers={"Nats-Msg-Id": envelope.id, "content-type": CONTENT_TYPE},
            )
        finally:
            await connection.close()
        types = await eventually(lambda: history(projection, issue_id), lambda t: len(t) == 2)
        assert types == ["minqing.issue.reported", "minqing.issue.assigned"]

    spans = Spans(exporter.get_finished_spans())
    [routing] = [
        s
        for s in spans.every(f"process {settings.subject_prefix}.issue.reported", SpanKind.CONSUMER)
        if (s.attributes or {}).get("messaging.consumer.group.name") == "assignment"
    ]
    assert routing.parent is None  # a new root
    [written] = spans.children(routing, "outbox write")
    [published] = spans.children(written, f"publish {settings.subject_prefix}.issue.assigned")
    assert published.context.trace_id == routing.context.trace_id


def _type(events: list[dict[str, str]], event_id: str) -> str:
    [found] = [e["type"] for e in events if e["id"] == event_id]
    return found.removeprefix("minqing.")


def _traceparent(span: ReadableSpan) -> str:
    c = span.context
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


async def test_a_department_systems_report_continues_the_trace_it_was_sent_with(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with running_intake(settings) as intake:
        headers, body = structured(cloudevent(ingress_report()))
        await intake.publish(body, {**headers, "traceparent": theirs})
        reported = await eventually(
            lambda: stream_messages(settings),
            lambda m: any(x.subject.endswith(".issue.reported") for x in m),
        )
    event = from_json(reported[0].data)
    spans = Spans(exporter.get_finished_spans())
    [received] = [
        s
        for s in spans.all
        if s.kind == SpanKind.CONSUMER
        and (s.attributes or {}).get("messaging.consumer.group.name") == "intake-ingress"
    ]
    assert received.parent is not None and f"{received.parent.span_id:016x}" == theirs[36:52]
    assert f"{received.context.trace_id:032x}" == theirs[3:35]
    written = spans.written_with(str(event["id"]))
    assert child_of(written, received)
    assert event["traceparent"] == _traceparent(written)
