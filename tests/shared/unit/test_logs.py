"""Log lines as `minqing serve` writes them: one JSON object each, the ids bound where known,
phones and feedback tokens masked as a last guard, the same fields for people on the console."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from minqing.shared.contract.envelope import Envelope, wrap
from minqing.shared.contract.events import IssueReported
from minqing.shared.service import logs, tracing


def reported() -> Envelope:
    event = IssueReported(
        title="Street lights out on Shiguan Road",
        description="Dark for a week",
        category="street_lights",
        village="shihu",
        source="hotline_12345",
    )
    return wrap(event, issue_id="01ISSUE", service="intake", actor="person:desk", time=NOW)


NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@pytest.fixture
def written() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose records go through the JSON formatter of service ``intake``."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter("intake", "json"))
    logger = logging.getLogger("minqing.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_fixed_fields_first(
    written: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = written
    logger.warning("relay: %d rows waiting", 3)
    [line] = lines(out)
    assert list(line)[:5] == ["timestamp", "level", "logger", "message", "service"]
    assert line["level"] == "warning" and line["message"] == "relay: 3 rows waiting"
    assert line["logger"] == "minqing.test.logs" and line["service"] == "intake"
    assert str(line["timestamp"]).endswith("Z")
    assert "event_id" not in line and "trace_id" not in line  # nothing known, nothing bound


def test_the_event_being_handled_and_the_current_span_are_bound(
    written: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = written
    envelope = reported()
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("process") as span, tracing.handling(envelope):
        logger.info("applied")
    logger.info("after")
    inside, after = lines(out)
    assert inside["event_id"] == envelope.id and inside["issue_id"] == "01ISSUE"
    assert inside["correlation_id"] == envelope.correlationid
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "event_id" not in after and "trace_id" not in after


def test_phones_and_feedback_tokens_are_masked_in_messages_and_tracebacks(
    written: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = written
    logger.info("sent to 13812345678: https://town.example/api/v1/feedback/Xy7_secret-tok")
    try:
        raise ValueError("phone +86 139 1234 5678 refused")
    except ValueError:
        logger.exception("failed")
    said, failed = lines(out)
    assert said["message"] == "sent to 138****5678: https://town.example/api/v1/feedback/***"
    assert "1234 5678" not in str(failed["exception"]) and "ValueError" in str(failed["exception"])


def test_the_console_format_shows_the_same_fields_to_people() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter("followup", "console"))
    record = logging.LogRecord("minqing.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    handler.emit(record)
    text = out.getvalue()
    assert "hello you" in text and "service=followup" in text and "[minqing.x]" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_a_request_is_one_access_line_with_its_route_template_and_what_it_recorded(
    written: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = written
    access = logging.getLogger("minqing.access")
    access.addHandler(logger.handlers[0])
    access.setLevel(logging.DEBUG)
    app = FastAPI()
    app.add_middleware(logs.AccessLog)

    @app.post("/api/v1/issues/{issue_id}/notes")
    async def note(issue_id: str) -> dict[str, str]:
        logs.note_recorded([reported() for _ in range(12)])
        return {}

    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answered = await client.post("/api/v1/issues/01PATH/notes?q=Zhang+San&token=s3cret")
            assert answered.status_code == 200
            assert (await client.get("/readyz")).status_code == 404
    finally:
        access.removeHandler(logger.handlers[0])
    line, unmatched = lines(out)
    assert line["message"] == "POST /api/v1/issues/{issue_id}/notes 200"
    assert line["http_route"] == "/api/v1/issues/{issue_id}/notes" and line["http_status"] == 200
    assert line["issue_id"] == "01PATH"  # the path's, before the events'
    assert len(str(line["event_id"]).split(",")) == 10 and line["event_count"] == 12
    assert "Zhang" not in out.getvalue() and "s3cret" not in out.getvalue()
    assert unmatched["http_route"] == "unmatched" and "event_id" not in unmatched
