"""The AsyncAPI document says what the code does: every event, its subject, its schema."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from minqing.services import cli
from minqing.services.assignment.handlers import HANDLERS as ASSIGNMENT
from minqing.services.catalog import channels, consumers
from minqing.services.followup.handlers import HANDLERS as FOLLOWUP
from minqing.services.intake.channels.nats.consumer import ingress_subjects
from minqing.shared.contract.asyncapi import EMITTED_BY, asyncapi
from minqing.shared.contract.events import EVENT_CLASSES
from minqing.shared.messaging.dispatch import consumed_types
from minqing.shared.service.settings import Settings


def document(settings: Settings | None = None) -> dict[str, Any]:
    return asyncapi(settings or Settings(), consumers())


def test_every_event_type_has_an_emitter_and_a_channel_on_its_subject() -> None:
    channels = document()["channels"]
    addresses = {c["address"] for c in channels.values()}
    for cls in EVENT_CLASSES:
        assert cls in EMITTED_BY
        assert f"minqing.events.{cls.TYPE}" in addresses


def test_each_message_schema_is_the_envelope_with_the_events_data() -> None:
    schemas = document()["components"]["schemas"]
    for cls in EVENT_CLASSES:
        envelope = schemas[f"{cls.__name__}CloudEvent"]
        assert {"specversion", "id", "source", "type", "subject", "time", "data"} <= set(
            envelope["properties"]
        )
        assert {"dataversion", "correlationid", "causationid", "actor"} <= set(
            envelope["properties"]
        )
        data = schemas[cls.__name__]
        assert set(data["properties"]) == set(cls.model_fields)
        assert data["additionalProperties"] is False


def test_the_consumers_listen_to_what_their_routing_tables_handle() -> None:
    assert consumed_types(ASSIGNMENT) == [
        "issue.reported",
        "issue.lookback_failed",
        "issue.revisit_recorded",  # a failed re-visit reopens the matter, as a look-back
        "issue.plan_set",  # a major affair's deadline follows its plan
        "issue.resolved",
        "issue.lookback_passed",
    ]
    assert consumed_types(FOLLOWUP) == [
        "issue.reported",
        "issue.assigned",
        "issue.deadline_recomputed",
        "issue.deadline_extended",
        "issue.responsible_changed",
        "issue.revisit_flagged",  # a re-visit task on the line staff's list
    ]
    assert set(consumers()) == {
        "intake-status",
        "intake-replies",
        "assignment",
        "followup",
        "projection-history",
        "projection-issues",
    }


def test_the_documented_consumers_are_the_routing_tables() -> None:
    operations = document()["operations"]
    titles = {name for name, op in operations.items() if op["action"] == "receive"}
    for cls in ASSIGNMENT:
        assert f"assignment consumes minqing.{cls.TYPE}" in titles
    assert not any(t.startswith("assignment consumes minqing.issue.escalated") for t in titles)


def test_a_test_stream_is_documented_under_its_own_subjects() -> None:
    settings = Settings(subject_prefix="t1.events", stream_name="T1")
    addresses = {c["address"] for c in document(settings)["channels"].values()}
    assert "t1.events.issue.reported" in addresses
    assert not any(a.startswith("minqing.") for a in addresses)


def full_document(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings()
    return asyncapi(settings, consumers(), channels(settings))


def test_the_ingress_outcome_and_dead_letter_channels_are_documented_from_the_consumer() -> None:
    settings = Settings()
    document = full_document(settings)
    by_address = {c["address"]: c for c in document["channels"].values()}
    [reports] = ingress_subjects(settings.ingress_subject_prefix)
    assert reports.replace("*", "{source}") == "minqing.ingress.{source}.report"
    for address in (
        "minqing.ingress.{source}.report",
        "minqing.outcomes.{source}",
        "minqing.dlq.ingress.{source}",
    ):
        assert "source" in by_address[address]["parameters"]
    operations = document["operations"]
    receive = {name for name, op in operations.items() if op["action"] == "receive"}
    send = {name for name, op in operations.items() if op["action"] == "send"}
    assert "intake-ingress consumes minqing.ingress.report" in receive
    assert "intake, followup: outcome of each ingress message" in send
    schemas = document["components"]["schemas"]
    assert set(schemas["IngressReport"]["properties"]) >= {"title", "category", "external_ref"}
    assert "external_ref" in schemas["IngressReport"]["required"]
    assert set(schemas["IngressOutcome"]["properties"]) >= {"ingress_id", "accepted", "errors"}
    # The canonical events are still there, unchanged.
    assert "minqing.events.issue.reported" in by_address


def test_the_cli_exports_the_same_document() -> None:
    result = CliRunner().invoke(cli.app, ["asyncapi"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == full_document()


def test_departments_progress_and_resolution_channels_are_documented_from_the_consumer() -> None:
    settings = Settings(ingress_subject_prefix="t2.ingress")
    document = full_document(settings)
    by_address = {c["address"]: c for c in document["channels"].values()}
    for kind in ("progress", "resolution"):
        assert "source" in by_address[f"t2.ingress.{{source}}.{kind}"]["parameters"]
    receive = {n for n, op in document["operations"].items() if op["action"] == "receive"}
    assert "followup-ingress consumes minqing.ingress.progress" in receive
    assert "followup-ingress consumes minqing.ingress.resolution" in receive
    schemas = document["components"]["schemas"]
    assert {"issue_id", "external_ref", "summary", "cost"} <= set(
        schemas["IngressResolution"]["properties"]
    )
    assert "unit" not in schemas["IngressResolution"].get("required", [])
    assert {"issue_id", "external_ref", "milestone", "done"} <= set(
        schemas["IngressProgress"]["properties"]
    )
