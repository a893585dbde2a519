"""The envelope: every event travels as a CloudEvents 1.0 structured-mode JSON message."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import ulid
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.conversion import to_json as sdk_to_json
from cloudevents.v1.http import CloudEvent, from_json
from ulid import ULID, ULIDGenerator

from minqing.shared.contract.envelope import (
    CONTENT_TYPE,
    Envelope,
    NewerVersion,
    UnreadableEvent,
    decode,
    parse,
    wrap,
)
from minqing.shared.contract.events import (
    Event,
    IssueAssigned,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueReported,
    IssueResolved,
)

SHANGHAI = timezone(timedelta(hours=8))
FRIDAY_MORNING = datetime(2026, 11, 27, 9, 30, tzinfo=SHANGHAI)
DUE = date(2026, 12, 8)


def reported() -> IssueReported:
    return IssueReported(
        title="Street lights out on Shiguan Road",
        description="Six lamps dark for a week",
        category="street_lights",
        village="shihu",
        source="hotline_12345",
        reporter_ref="ref-1",
        address="Shiguan Road",
        lat=33.51,
        lon=119.21,
    )


def assigned() -> IssueAssigned:
    return IssueAssigned(
        unit="town_construction",
        responsible_person_id="shihu-secretary",
        responsible_person_name="Chen Lixin",
        deadline=date(2026, 12, 4),
        working_days=5,
        assignment_no=1,
        reason="routed on report",
        category="street_lights",
        village="shihu",
        calendar="weekdays",
    )


def resolved() -> IssueResolved:
    return IssueResolved(
        unit="town_construction",
        summary="Replaced six lamps",
        resolved_by="wu",
        assignment_no=1,
        lookback_due=DUE,
    )


def lookback(cls: type[IssueLookbackPassed | IssueLookbackFailed]) -> Event:
    return cls(
        visitor="grid-worker-7",
        notes="All lit at night",
        assignment_no=1,
        lookback_due=DUE,
        within_window=True,
    )


def wrapped(event: Event | None = None, **overrides: Any) -> Envelope:
    arguments: dict[str, Any] = {
        "issue_id": "issue-1",
        "service": "intake",
        "actor": "hotline_12345",
        "time": FRIDAY_MORNING,
    }
    arguments.update(overrides)
    return wrap(event or reported(), **arguments)


def altered(envelope: Envelope, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The envelope's JSON after ``change`` edits its parsed form."""
    message = json.loads(envelope.to_json())
    change(message)
    return json.dumps(message).encode()


def test_a_wrapped_event_names_its_type_source_subject_time_and_actor() -> None:
    envelope = wrapped()

    assert envelope.specversion == "1.0"
    assert envelope.type == "minqing.issue.reported"
    assert envelope.short_type == "issue.reported"
    assert envelope.source == "/minqing/intake"
    assert envelope.subject == "issue-1"
    assert envelope.time == FRIDAY_MORNING
    assert envelope.actor == "hotline_12345"
    assert envelope.datacontenttype == "application/json"
    assert envelope.dataversion == 1


def test_the_data_is_the_event_as_json() -> None:
    envelope = wrapped(resolved())

    assert envelope.data["lookback_due"] == "2026-12-08"
    assert envelope.data["summary"] == "Replaced six lamps"


def test_a_new_event_starts_its_own_correlation_and_has_no_cause() -> None:
    envelope = wrapped()

    assert envelope.correlationid == envelope.id
    assert envelope.causationid is None


def test_explicit_correlation_and_causation_ids_are_kept() -> None:
    envelope = wrapped(correlation_id="corr-1", causation_id="cause-1")

    assert envelope.correlationid == "corr-1"
    assert envelope.causationid == "cause-1"


def test_an_event_caused_by_another_inherits_its_correlation_and_names_its_cause() -> None:
    report = wrapped()
    assignment = wrapped(assigned(), service="assignment", cause=report)
    resolution = wrapped(resolved(), service="followup", cause=assignment)

    assert assignment.correlationid == report.id
    assert assignment.causationid == report.id
    assert resolution.correlationid == report.id
    assert resolution.causationid == assignment.id


def test_ids_are_ulids_that_sort_by_creation_even_within_one_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_millisecond = 1_795_000_000_000
    monkeypatch.setattr(ulid, "default_generator", ULIDGenerator(clock=lambda: frozen_millisecond))

    ids = [wrapped().id for _ in range(200)]

    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    assert all(ULID.from_str(i).milliseconds == frozen_millisecond for i in ids)


def test_ids_made_in_a_later_millisecond_sort_after_earlier_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = iter(range(1_795_000_000_000, 1_795_000_000_100))
    monkeypatch.setattr(ulid, "default_generator", ULIDGenerator(clock=lambda: next(ticks)))

    ids = [wrapped().id for _ in range(100)]

    assert sorted(ids) == ids


def test_absent_optional_attributes_are_left_out_of_the_json_not_null() -> None:
    message = json.loads(wrapped().to_json())

    assert "causationid" not in message
    assert None not in message.values()


def test_the_content_type_is_structured_mode_cloudevents_json() -> None:
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_the_cloudevents_sdk_reads_our_json_with_its_extension_attributes() -> None:
    envelope = wrapped(assigned(), correlation_id="corr-1", causation_id="cause-1")

    event = from_json(envelope.to_json())

    assert event["specversion"] == "1.0"
    assert event["id"] == envelope.id
    assert event["type"] == "minqing.issue.assigned"
    assert event["source"] == "/minqing/intake"
    assert event["subject"] == "issue-1"
    assert event["time"] == "2026-11-27T09:30:00+08:00"
    assert event["datacontenttype"] == "application/json"
    assert event["dataversion"] == 2  # issue.assigned is at version 2
    assert event["correlationid"] == "corr-1"
    assert event["causationid"] == "cause-1"
    assert event["actor"] == "hotline_12345"
    assert event.get_data() == envelope.data


def test_our_json_passes_the_sdks_strict_cloudevents_validation() -> None:
    envelope = wrapped(causation_id="cause-1")

    event = JSONFormat().read(None, envelope.to_json())

    assert event.get_time() == FRIDAY_MORNING
    for name in ("dataversion", "correlationid", "causationid", "actor"):
        assert event.get_extension(name) == getattr(envelope, name)
    assert event.get_data() == envelope.data


def test_what_the_sdk_writes_back_from_our_json_reads_as_the_same_envelope() -> None:
    envelope = wrapped(resolved(), causation_id="cause-1")

    rewritten = sdk_to_json(from_json(envelope.to_json()))

    assert parse(rewritten) == envelope


def test_an_event_written_by_the_sdk_is_read_and_decoded_by_us() -> None:
    attributes = {
        "type": "minqing.issue.resolved",
        "source": "/grid-center",
        "id": "01KBZ2Q0000000000000000000",
        "subject": "issue-9",
        "time": "2026-11-27T01:30:00Z",
        "dataversion": 1,
        "correlationid": "corr-9",
        "actor": "grid-worker-7",
    }
    data = resolved().model_dump(mode="json")

    envelope = parse(sdk_to_json(CloudEvent(attributes, data)))

    assert envelope.subject == "issue-9"
    assert envelope.time == datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    assert envelope.datacontenttype == "application/json"
    assert envelope.correlationid == "corr-9"
    assert envelope.causationid is None
    assert decode(envelope) == resolved()


def test_extension_attributes_of_other_producers_are_kept() -> None:
    raw = altered(wrapped(), lambda m: m.update(traceparent="00-abc-def-01"))

    envelope = parse(raw)

    assert json.loads(envelope.to_json())["traceparent"] == "00-abc-def-01"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m.pop("id"), "id"),
        (lambda m: m.update(id=""), "id"),
        (lambda m: m.pop("source"), "source"),
        (lambda m: m.pop("subject"), "subject"),
        (lambda m: m.update(specversion="0.3"), "specversion"),
        (lambda m: m.update(time="2026-11-27T09:30:00"), "time"),
        (lambda m: m.update(data="Six lamps dark"), "data"),
        (lambda m: m.update(dataversion=0), "dataversion"),
        (lambda m: m.pop("correlationid"), "correlationid"),
        (lambda m: m.pop("actor"), "actor"),
        (lambda m: m.update(datacontenttype="text/plain"), "datacontenttype"),
    ],
    ids=[
        "no id",
        "empty id",
        "no source",
        "no subject",
        "old specversion",
        "time without zone",
        "text data",
        "dataversion zero",
        "no correlationid",
        "no actor",
        "not json data",
    ],
)
def test_a_message_that_is_not_a_valid_envelope_is_unreadable_naming_the_attribute(
    change: Callable[[dict[str, Any]], None], named: str
) -> None:
    with pytest.raises(UnreadableEvent, match=rf"not a valid event envelope: (.*; )?{named}: "):
        parse(altered(wrapped(), change))


def test_a_message_that_is_not_json_is_unreadable() -> None:
    with pytest.raises(UnreadableEvent, match="not a valid event envelope"):
        parse(b"Street lights out")


def test_a_message_without_a_specversion_is_unreadable() -> None:
    with pytest.raises(UnreadableEvent, match="specversion"):
        parse(altered(wrapped(), lambda m: m.pop("specversion")))


@pytest.mark.parametrize(
    "event_type",
    ["minqing.issue.teleported", "com.example.issue.reported", "issue.reported"],
)
def test_an_event_type_this_code_does_not_know_decodes_to_nothing(event_type: str) -> None:
    envelope = parse(altered(wrapped(), lambda m: m.update(type=event_type)))

    assert decode(envelope) is None


def test_a_newer_data_version_waits_for_a_newer_consumer() -> None:
    envelope = parse(altered(wrapped(), lambda m: m.update(dataversion=2)))

    with pytest.raises(
        NewerVersion,
        match=r"minqing\.issue\.reported dataversion 2 is newer than this consumer reads \(1\)",
    ):
        decode(envelope)


def test_a_field_this_code_does_not_know_is_ignored() -> None:
    envelope = parse(altered(wrapped(assigned()), lambda m: m["data"].update(priority="high")))

    assert decode(envelope) == assigned()


def test_a_stored_version_1_assignment_is_upcast_to_version_2() -> None:
    stored = (Path(__file__).parent / "payloads" / "issue.assigned.v1.json").read_bytes()

    event = decode(parse(stored))

    assert isinstance(event, IssueAssigned)
    assert event.calendar == "weekdays"  # version 1 deadlines were counted Monday to Friday
    assert event.deadline == date(2026, 12, 4)
    assert event.unit == "town_construction"


def test_an_event_holding_a_nul_character_is_unreadable() -> None:
    raw = altered(wrapped(), lambda m: m["data"].update(title="lamp\u0000out"))

    with pytest.raises(UnreadableEvent, match="NUL"):
        parse(raw)


def test_an_escaped_backslash_before_u0000_is_not_taken_for_a_nul() -> None:
    raw = altered(wrapped(), lambda m: m["data"].update(title="C:\\u0000 path"))

    assert parse(raw).data["title"] == "C:\\u0000 path"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.pop("deadline"), "deadline: Field required"),
        (lambda d: d.update(deadline="next week"), "deadline: Input should be a valid date"),
        (lambda d: d.update(assignment_no=0), "assignment_no: Input should be greater than"),
    ],
    ids=["missing field", "wrong type", "out of range"],
)
def test_bad_data_is_unreadable_naming_the_field(
    change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    envelope = parse(altered(wrapped(assigned()), lambda m: change(m["data"])))

    with pytest.raises(UnreadableEvent, match=f"invalid data for minqing.issue.assigned: {reason}"):
        decode(envelope)
