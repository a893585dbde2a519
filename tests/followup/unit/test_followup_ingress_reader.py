"""Reading a department's progress and resolution CloudEvents into followup's commands,
and the reason code of what is refused (pure; the integration tests send the same through
NATS)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent

from minqing.services.followup.domain import ReportProgress, ResolveIssue
from minqing.services.followup.ingress import KINDS, read_step
from minqing.shared.contract import reference
from minqing.shared.ingress.cloudevents import IngressMessage, Refused, read_cloudevent
from minqing.shared.service.settings import REFERENCE_DIR
from tests.support.paths import ROOT

PREFIX = "minqing.ingress"
SOURCES = ("hotline_12345", "civil_affairs", "visit")
ISSUE = "01JD0000000000000000000000"
RESOLUTION = {"external_ref": "CA-1", "summary": "Lamp replaced", "cost": "120.50"}


@pytest.fixture(autouse=True, scope="module")
def reference_data() -> None:
    reference.activate(reference.load(REFERENCE_DIR))


def event(kind: str, data: Any, source: str = "civil_affairs", **attributes: Any) -> CloudEvent:
    attrs = {"type": f"minqing.ingress.{kind}", "source": f"/{source}", "id": "ev-1"}
    attrs.update(attributes)
    return CloudEvent(attrs, data)


def read(event: CloudEvent, subject: str, *, binary: bool = False) -> IngressMessage:
    headers, body = to_binary(event) if binary else to_structured(event)
    if binary:
        headers = {**headers, "content-type": "application/json"}
    return read_cloudevent(
        subject, body, dict(headers), prefix=PREFIX, kinds=KINDS, max_bytes=4096, sources=SOURCES
    )


def refusal(kind: str, data: Any, source: str = "civil_affairs") -> Refused:
    with pytest.raises(Refused) as refused:
        read_step(read(event(kind, data, source), f"{PREFIX}.{source}.{kind}"))
    return refused.value


@pytest.mark.parametrize("binary", [False, True])
def test_a_resolution_by_ticket_id_is_the_http_resolution_of_the_sender_as_unit(
    binary: bool,
) -> None:
    message = read(
        event("resolution", RESOLUTION), f"{PREFIX}.civil_affairs.resolution", binary=binary
    )
    step = read_step(message)

    assert (message.kind, message.source, message.ingress_id) == (
        "resolution",
        "civil_affairs",
        "ev-1",
    )
    assert step.issue_id is None and step.external_ref == "CA-1"
    assert step.command == ResolveIssue(  # by the department system itself
        unit="civil_affairs",
        summary="Lamp replaced",
        cost=Decimal("120.50"),
        resolved_by="system:civil_affairs",
    )


def test_progress_by_issue_id_is_reported_by_the_sender_on_behalf_of_a_named_person() -> None:
    data = {"issue_id": ISSUE, "milestone": 2, "note": "Piers poured", "done": True}
    message = read(event("progress", data), f"{PREFIX}.civil_affairs.progress")

    step = read_step(message)
    named = read_step(
        read(event("progress", {**data, "reported_by": "Wang Fang"}), message_subject(message))
    )

    assert step.issue_id == ISSUE
    sender = "system:civil_affairs"
    assert step.command == ReportProgress(2, "Piers poured", True, sender, "civil_affairs")
    assert isinstance(named.command, ReportProgress)
    assert (named.command.reported_by, named.command.on_behalf_of) == (sender, "Wang Fang")


def message_subject(message: IngressMessage) -> str:
    return f"{PREFIX}.{message.source}.{message.kind}"


def test_a_type_that_is_not_the_subjects_kind_is_refused() -> None:
    with pytest.raises(Refused) as refused:
        read(event("report", RESOLUTION), f"{PREFIX}.civil_affairs.resolution")
    assert refused.value.code == "wrong_type"
    with pytest.raises(Refused) as wrong:
        read(event("resolution", RESOLUTION), f"{PREFIX}.civil_affairs.report")
    assert wrong.value.code == "wrong_subject"


@pytest.mark.parametrize(
    ("kind", "data", "code", "field"),
    [
        ("resolution", {"summary": "Done"}, "invalid_resolution", None),
        ("resolution", {**RESOLUTION, "issue_id": ISSUE}, "invalid_resolution", None),
        ("resolution", {**RESOLUTION, "summary": ""}, "invalid_resolution", "data.summary"),
        ("resolution", {**RESOLUTION, "cost": "-1"}, "invalid_resolution", "data.cost"),
        ("resolution", {**RESOLUTION, "colour": "red"}, "unknown_field", "data.colour"),
        ("resolution", {"external_ref": "CA-1"}, "missing_field", "data.summary"),
        ("resolution", {**RESOLUTION, "unit": "water_station"}, "source_mismatch", "data.unit"),
        ("resolution", {**RESOLUTION, "unit": "nowhere"}, "unknown_code", "data.unit"),
        (
            "progress",
            {"issue_id": "not-an-id", "milestone": 1},
            "invalid_progress",
            "data.issue_id",
        ),
        ("progress", {"issue_id": ISSUE, "milestone": 0}, "invalid_progress", "data.milestone"),
        ("progress", [1, 2], "invalid_progress", "data"),
    ],
)
def test_invalid_data_is_refused_with_its_reason_code(
    kind: str, data: Any, code: str, field: str | None
) -> None:
    refused = refusal(kind, data)

    assert refused.code == code
    assert refused.problems[0].field == field


def test_the_unit_may_be_named_when_it_is_the_sender() -> None:
    step = read_step(
        read(
            event("resolution", {**RESOLUTION, "unit": "civil_affairs"}),
            f"{PREFIX}.civil_affairs.resolution",
        )
    )
    assert isinstance(step.command, ResolveIssue) and step.command.unit == "civil_affairs"


def test_the_integrator_guides_resolution_example_reads_as_a_resolution() -> None:
    guide = ROOT / "docs" / "integrator" / "index.md"
    section = guide.read_text().split("## Progress and resolution", 1)[1]
    example = section.split("```json", 1)[1].split("```", 1)[0]
    message = read_cloudevent(
        f"{PREFIX}.civil_affairs.resolution",
        example.encode(),
        {"content-type": "application/cloudevents+json"},
        prefix=PREFIX,
        kinds=KINDS,
        max_bytes=4096,
        sources=SOURCES,
    )
    step = read_step(message)
    assert step.external_ref == "CA-2026-0042"
    assert isinstance(step.command, ResolveIssue)
    assert (step.command.unit, step.command.funding_source) == ("civil_affairs", "project_funds")
