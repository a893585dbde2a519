"""Reading a department system's CloudEvent: what is accepted, and the reason code of what
is not (pure; the integration tests send the same through NATS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent

from minqing.services.catalog import ingress_kinds
from minqing.services.intake.channels.nats.consumer import CONSUMER, IngressConsumer
from minqing.services.intake.channels.nats.reader import (
    IngressMessage,
    Refused,
    read_ingress,
    report_command,
    source_token,
)
from minqing.services.intake.handlers import Policy
from minqing.services.intake.store import plumbing
from minqing.shared.contract import reference
from minqing.shared.ingress.cloudevents import outcome_id
from minqing.shared.ingress.kinds import READ_BY, read_elsewhere
from minqing.shared.ingress.metrics import IngressMetrics
from minqing.shared.service.runtime import build_runtime
from minqing.shared.service.settings import REFERENCE_DIR, Settings

PREFIX = "minqing.ingress"
SUBJECT = f"{PREFIX}.hotline_12345.report"
SOURCES = ("hotline_12345", "visit", "grid_center")
DATA = {
    "title": "Street light out",
    "description": "Dark for a week.",
    "category": "Street lights",  # a name: resolved to its code as over HTTP
    "village": "Sanqi Village",
    "external_ref": "HL-2026-0001",
}


@pytest.fixture(autouse=True, scope="module")
def reference_data() -> None:
    reference.activate(reference.load(REFERENCE_DIR))


def event(data: Any = None, **attributes: Any) -> CloudEvent:
    attrs = {"type": "minqing.ingress.report", "source": "/hotline_12345", "id": "ev-1"}
    attrs.update(attributes)
    return CloudEvent(attrs, DATA if data is None else data)


def read(body: bytes, headers: dict[str, str] | None = None, subject: str = SUBJECT) -> Any:
    return read_ingress(subject, body, headers, prefix=PREFIX, max_bytes=2048, sources=SOURCES)


def code_of(body: bytes, headers: dict[str, str] | None = None, subject: str = SUBJECT) -> str:
    with pytest.raises(Refused) as refused:
        report_command(read(body, headers, subject))
    return refused.value.code


def test_structured_and_binary_mode_read_the_same_report() -> None:
    headers, body = to_structured(event())
    structured = report_command(read(body, dict(headers)))
    headers, body = to_binary(event())
    binary = report_command(read(body, dict(headers)))

    assert structured.command == binary.command
    assert structured.command.source == "hotline_12345"
    assert structured.command.category == "street_lights"
    assert structured.command.external_ref == "HL-2026-0001"
    assert structured.request_hash == binary.request_hash


def test_a_longer_source_path_is_the_same_sender() -> None:
    _, body = to_structured(event(source="/hotline_12345/gateway-2"))
    assert read(body).source == "hotline_12345"


def test_an_identical_copy_has_the_same_key_a_changed_or_resubmitted_one_another() -> None:
    _, body = to_structured(event(time="2026-11-25T08:00:00Z"))
    _, later = to_structured(event(time="2026-11-25T08:00:05Z"))
    first = read(body)
    assert read(body).key == first.key
    assert read(later).key != first.key
    assert read(body, {"Minqing-Resubmit-Of": "7"}).key != first.key
    assert read(later).ingress_id == first.ingress_id == "ev-1"


@pytest.mark.parametrize(
    ("body", "headers", "subject", "code"),
    [
        (b"{", None, SUBJECT, "not_json"),
        (b"\xff", None, SUBJECT, "not_utf8"),
        (b"[" * 1500, None, SUBJECT, "not_json"),
        (b'"a string"', None, SUBJECT, "not_a_cloudevent"),
        (b"{}", None, SUBJECT, "not_a_cloudevent"),
        (b"x" * 3000, None, SUBJECT, "too_large"),
        (
            to_structured(event())[1],
            {"content-type": "text/xml"},
            SUBJECT,
            "unsupported_content_type",
        ),
        (to_structured(event(type="x.y"))[1], None, SUBJECT, "wrong_type"),
        (to_structured(event(source="hotline_12345"))[1], None, SUBJECT, "not_a_cloudevent"),
        (to_structured(event(source="/visit"))[1], None, SUBJECT, "source_mismatch"),
        (
            to_structured(event(source="/nobody"))[1],
            None,
            f"{PREFIX}.nobody.report",
            "unknown_source",
        ),
        (to_structured(event())[1], None, f"{PREFIX}.hotline_12345.progress", "wrong_subject"),
        (to_structured(event(id="bad\x00id"))[1], None, SUBJECT, "not_a_cloudevent"),
    ],
)
def test_a_message_that_is_not_a_readable_cloudevent_is_refused_with_its_code(
    body: bytes, headers: dict[str, str] | None, subject: str, code: str
) -> None:
    assert code_of(body, headers, subject) == code


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"category": "unicorns"}, "unknown_category", "data.category"),
        ({"village": "atlantis"}, "unknown_village", "data.village"),
        ({"source": "visit"}, "source_mismatch", "data.source"),
        ({"source": "nobody"}, "unknown_source", "data.source"),
        ({"external_ref": None}, "invalid_report", "data.external_ref"),
        ({"title": 5}, "invalid_report", "data.title"),
        ({"colour": "red"}, "unknown_field", "data.colour"),
        ({"description": "bad \x07 bell"}, "invalid_report", "data.description"),
    ],
)
def test_a_report_that_breaks_the_rules_is_refused_naming_the_field(
    change: dict[str, Any], code: str, field: str
) -> None:
    _, body = to_structured(event({**DATA, **change}))
    with pytest.raises(Refused) as refused:
        report_command(read(body))
    assert refused.value.code == code
    assert refused.value.problems[0].field == field


def test_data_that_is_not_an_object_is_refused() -> None:
    message = IngressMessage("hotline_12345", "ev-1", ["a"], "f")
    with pytest.raises(Refused) as refused:
        report_command(message)
    assert refused.value.code == "invalid_report"


def test_the_subject_names_the_source() -> None:
    assert source_token(SUBJECT, PREFIX) == "hotline_12345"
    assert source_token("other.hotline_12345.report", PREFIX) is None
    assert source_token(f"{PREFIX}.a.b.report", PREFIX) is None


def test_the_streams_never_overlap() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Settings(ingress_subject_prefix="minqing.events")
    with pytest.raises(ValueError, match="overlap"):
        Settings(subject_prefix="a.b", dlq_subject_prefix="a.b.dlq")
    with pytest.raises(ValueError, match="differ"):
        Settings(dlq_stream_name="MINQING_EVENTS")
    with pytest.raises(ValueError, match="larger"):
        Settings(max_ingress_bytes=600 * 1024)
    assert json.loads(Settings().model_dump_json())["ingress_subject_prefix"] == "minqing.ingress"


class _Raw:
    subject = SUBJECT
    data = b"{}"
    headers: dict[str, str] | None = None


def test_a_reader_failure_is_a_refusal_not_a_stopped_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    runtime = build_runtime("intake", settings, plumbing)
    consumer = IngressConsumer(
        runtime, reference.active(), Policy(), IngressMetrics("intake-ingress")
    )

    def broken(*message: object) -> None:
        raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(consumer, "read", broken)
    with pytest.raises(Refused) as refused:
        consumer.parse(_Raw())  # type: ignore[arg-type]
    assert refused.value.code == "processing_failed"
    assert "a bug in the reader" in str(refused.value)


EVENT_ID = "3f0c9a5e-9d2b-4a61-8d0e-2f6c1e7a4b10"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        # Well-formed, refused for an attribute that comes after the id.
        (json.dumps({"specversion": "1.0", "id": EVENT_ID, "source": "/visit"}).encode(), None),
        # The data's own "id" before the event's.
        (json.dumps({"data": {"id": "inner"}, "id": EVENT_ID, "type": "x"}).encode(), None),
        # Broken JSON after the id; an "id" string as a value first, one nested in data.
        (
            b'{"type": "id", "data": {"id": "inner"}, "id" :\n "' + EVENT_ID.encode() + b'", "x',
            None,
        ),
        # Bad UTF-8 elsewhere in the body.
        (b'{"id": "' + EVENT_ID.encode() + b'", "data": "\xff\xfe"}', None),
        # An escaped character in the id.
        (b'{"id": "3f0c9a5e\\u002d9d2b-4a61-8d0e-2f6c1e7a4b10", "spec', None),
        # Binary mode: the id is a header, the body is data.
        (b'{"id": "inner"}', {"ce-specversion": "1.0", "ce-id": EVENT_ID}),
        # Binary mode without ce-specversion (read as structured, refused): ce-id still counts.
        (b"{not json", {"ce-id": EVENT_ID, "content-type": "application/json"}),
    ],
    ids=["json", "nested-first", "broken", "bad-utf8", "escaped", "binary", "binary-no-spec"],
)
def test_a_refused_message_is_answered_under_its_cloudevent_id(
    body: bytes, headers: dict[str, str] | None
) -> None:
    assert outcome_id(body, headers, "MINQING_INGRESS", 7) == EVENT_ID


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x01 not a cloudevent",
        json.dumps({"id": 42}).encode(),
        json.dumps({"id": "bad\x00id"}).encode(),
        json.dumps({"id": "x" * 201}).encode(),
        json.dumps([{"id": "in a list"}]).encode(),
        b'[{"id": "in a list", ',
    ],
    ids=["bytes", "number", "nul", "too-long", "list", "broken-list"],
)
def test_a_message_without_a_readable_id_is_answered_under_its_msg_id_or_stream_place(
    body: bytes,
) -> None:
    assert outcome_id(body, {"Nats-Msg-Id": "sent-1"}, "MINQING_INGRESS", 7) == "sent-1"
    assert outcome_id(body, None, "MINQING_INGRESS", 7) == "MINQING_INGRESS/7"
    assert outcome_id(body, {"Nats-Msg-Id": " "}, "MINQING_INGRESS", 7) == "MINQING_INGRESS/7"


def _raw(subject: str, body: bytes = b"{}") -> Any:
    raw = _Raw()
    raw.subject, raw.data = subject, body
    return raw


def test_intake_answers_every_subject_of_the_stream_no_other_consumer_reads() -> None:
    kinds = [kind for each in ingress_kinds().values() for kind in each]
    assert len(kinds) == len(set(kinds))  # one reader per kind
    assert {(c.split("-")[0], k) for c, each in ingress_kinds().items() for k in each} == {
        (reader, kind) for kind, reader in READ_BY.items()
    }  # the consumers read what the ingress contract says they do
    settings = Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    runtime = build_runtime("intake", settings, plumbing)
    metrics = IngressMetrics(CONSUMER)
    consumer = IngressConsumer(
        runtime, reference.active(), Policy(), metrics, elsewhere=read_elsewhere("intake")
    )

    assert consumer.subjects == (f"{PREFIX}.>",)
    body = json.dumps({"specversion": "1.0", "id": "p-1", "data": {}}).encode()
    passed_over = consumer.parse(_raw(f"{PREFIX}.civil_affairs.progress", body))
    assert passed_over.id == consumer.parse(_raw(f"{PREFIX}.visit.progress")).id  # one key
    for subject, code in [
        (f"{PREFIX}.hotline_12345.complaint", "unknown_kind"),
        (f"{PREFIX}.hotline_12345", "wrong_subject"),
        (f"{PREFIX}.hotline_12345.report.v2", "wrong_subject"),
    ]:
        with pytest.raises(Refused) as refused:
            consumer.parse(_raw(subject))
        assert refused.value.code == code, subject
