"""Department systems on NATS: CloudEvents in, matters and outcomes out, and every message that
cannot be accepted in the dead-letter stream with its reason. One intake for the module; each
test uses its own CloudEvent ids and ticket ids."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.js.api import ConsumerInfo
from sqlalchemy import func, select

from minqing.services.intake.store import matters, reports
from minqing.shared.contract.envelope import Envelope
from tests.support.harness import eventually, fresh_database, isolated_settings, stream_messages
from tests.support.ingress import (
    Intake,
    binary,
    cloudevent,
    report,
    running_intake,
)


@pytest.fixture(scope="module")
async def intake(nats_url: str, server_db_url: str, template_db: str) -> AsyncIterator[Intake]:
    async with fresh_database(server_db_url, template_db) as url:
        settings = isolated_settings(nats_url, url, max_ingress_bytes=4096)
        async with running_intake(settings) as running:
            yield running


async def matter_count(intake: Intake) -> int:
    async with intake.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(matters)) or 0)


async def canonical_event(intake: Intake, event_id: str) -> Envelope:
    messages = await eventually(
        lambda: stream_messages(intake.settings),
        lambda ms: any(m.headers and m.headers.get("Nats-Msg-Id") == event_id for m in ms),
    )
    [message] = [m for m in messages if m.headers and m.headers["Nats-Msg-Id"] == event_id]
    return Envelope.model_validate_json(message.data)


async def test_a_structured_cloudevent_becomes_a_matter_and_its_outcome_is_published(
    intake: Intake,
) -> None:
    data = report()
    ingress_id = await intake.send(cloudevent(data, source="/hotline_12345/gateway-2"))

    outcome = await intake.outcome(ingress_id)
    assert outcome["accepted"] is True
    assert outcome["ingress_id"] == ingress_id
    assert outcome["external_ref"] == data["external_ref"]
    published = await eventually(
        lambda: stream_messages(intake.settings, intake.settings.outcomes_stream_name),
        lambda ms: any(json.loads(m.data)["ingress_id"] == ingress_id for m in ms),
    )
    [message] = [m for m in published if json.loads(m.data)["ingress_id"] == ingress_id]
    assert message.subject == f"{intake.settings.outcomes_subject_prefix}.hotline_12345"
    assert json.loads(message.data) == outcome
    event = await canonical_event(intake, outcome["event_id"])
    assert event.type == "minqing.issue.reported"
    assert event.subject == outcome["issue_id"]
    assert event.data["source"] == "hotline_12345"
    assert event.data["external_ref"] == data["external_ref"]
    assert event.data["reporter_phone_masked"] == "138****5678"


async def test_a_binary_mode_cloudevent_is_accepted_too(intake: Intake) -> None:
    event = cloudevent(report(), source="/grid_center")
    headers, body = binary(event)
    assert "ce-id" in headers
    await intake.publish(body, headers, source="grid_center")

    outcome = await intake.outcome(event["id"], "grid_center")
    assert outcome["accepted"] is True and outcome["issue_id"]


async def test_the_same_ticket_or_the_same_cloudevent_id_gives_the_same_matter(
    intake: Intake,
) -> None:
    data = report()
    first = await intake.outcome(await intake.send(cloudevent(data)))
    same_ticket = await intake.outcome(await intake.send(cloudevent(data)))
    ingress_id = str(uuid.uuid4())
    again = [await intake.send(cloudevent(report(), id=ingress_id)) for _ in range(2)]
    by_id = await intake.outcome(again[0])

    assert same_ticket["issue_id"] == first["issue_id"]
    assert same_ticket["created"] is False
    assert first["created"] is True
    async with intake.runtime.sessions() as session:
        refs = [data["external_ref"]]
        query = select(func.count()).where(reports.c.external_ref.in_(refs))
        assert await session.scalar(query) == 1
        query = select(func.count()).where(reports.c.idempotency_key == ingress_id)
        assert await session.scalar(query) == 1
    assert by_id["accepted"] is True


async def test_a_cloudevent_id_used_again_for_another_report_is_refused(intake: Intake) -> None:
    ingress_id = str(uuid.uuid4())
    first = await intake.outcome(await intake.send(cloudevent(report(), id=ingress_id)))
    before = len(await stream_messages(intake.settings, intake.settings.dlq_stream_name))
    await intake.send(cloudevent(report(title="Something else entirely"), id=ingress_id))

    dead = await intake.dead(before + 1)
    assert dead[-1].headers is not None
    assert dead[-1].headers["Minqing-Dead-Reason-Code"] == "ingress_id_reused"
    # The accepted outcome stands; the refusal is on the outcomes stream.
    assert (await intake.outcome(ingress_id)) == first
    published = await intake.outcomes(1)
    refusals = [o for o in published if o["ingress_id"] == ingress_id and not o["accepted"]]
    assert refusals[0]["errors"][0]["code"] == "ingress_id_reused"


def _ce(data: Any = None, **attributes: Any) -> dict[str, Any]:
    """A structured CloudEvent as a dict, to be broken on purpose."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/hotline_12345",
        "type": "minqing.ingress.report",
        "data": report() if data is None else data,
    }
    event.update(attributes)
    return event


STRUCTURED = {"content-type": "application/cloudevents+json"}

# name -> (body, headers, subject's source, expected reason code)
BAD: dict[str, tuple[bytes, dict[str, str], str, str]] = {
    "not JSON": (b"{this is not json", STRUCTURED, "hotline_12345", "not_json"),
    "bad UTF-8": (b'{"id": "\xff\xfe"}', STRUCTURED, "hotline_12345", "not_utf8"),
    "JSON but not an object": (b"[1, 2, 3]", STRUCTURED, "hotline_12345", "not_a_cloudevent"),
    "no specversion": (
        json.dumps({k: v for k, v in _ce().items() if k != "specversion"}).encode(),
        STRUCTURED,
        "hotline_12345",
        "not_a_cloudevent",
    ),
    "id of the wrong type": (
        json.dumps(_ce(id=42)).encode(),
        {},
        "hotline_12345",
        "not_a_cloudevent",
    ),
    "wrong type": (
        json.dumps(_ce(type="minqing.issue.reported")).encode(),
        STRUCTURED,
        "hotline_12345",
        "wrong_type",
    ),
    "source not matching the subject": (
        json.dumps(_ce(source="/grid_center")).encode(),
        STRUCTURED,
        "hotline_12345",
        "source_mismatch",
    ),
    "data.source not matching": (
        json.dumps(_ce(report(source="visit"))).encode(),
        STRUCTURED,
        "hotline_12345",
        "source_mismatch",
    ),
    "unknown source": (
        json.dumps(_ce(source="/pirate_radio")).encode(),
        STRUCTURED,
        "pirate_radio",
        "unknown_source",
    ),
    "unknown category": (
        json.dumps(_ce(report(category="unicorns"))).encode(),
        STRUCTURED,
        "hotline_12345",
        "unknown_category",
    ),
    "unknown village": (
        json.dumps(_ce(report(village="atlantis"))).encode(),
        STRUCTURED,
        "hotline_12345",
        "unknown_village",
    ),
    "a field of the wrong type": (
        json.dumps(_ce(report(title=["a", "list"]))).encode(),
        STRUCTURED,
        "hotline_12345",
        "invalid_report",
    ),
    "no external_ref": (
        json.dumps(_ce({k: v for k, v in report().items() if k != "external_ref"})).encode(),
        STRUCTURED,
        "hotline_12345",
        "missing_field",
    ),
    "NUL in the title": (
        json.dumps(_ce(report(title="lamp\u0000out"))).encode(),
        STRUCTURED,
        "hotline_12345",
        "invalid_report",
    ),
    "over the size limit": (
        json.dumps(_ce(report(description="x" * 5000))).encode(),
        STRUCTURED,
        "hotline_12345",
        "too_large",
    ),
    "another content type": (
        json.dumps(_ce()).encode(),
        {"content-type": "text/plain"},
        "hotline_12345",
        "unsupported_content_type",
    ),
}


async def test_every_message_that_cannot_be_accepted_is_dead_lettered_with_its_reason(
    intake: Intake,
) -> None:
    before = len(await stream_messages(intake.settings, intake.settings.dlq_stream_name))
    matters_before = await matter_count(intake)
    sent = {}
    for name, (body, headers, source, code) in BAD.items():
        seq = await intake.publish(body, {**headers, "X-Case": name}, source=source)
        sent[name] = (seq, body, source, code)
    ingress_id = await intake.send(cloudevent(report()))  # a good one after the bad ones

    assert (await intake.outcome(ingress_id))["accepted"] is True
    dead = (await intake.dead(before + len(BAD)))[before:]
    by_case = {m.headers["X-Case"]: m for m in dead if m.headers}
    assert set(by_case) == set(BAD)
    for name, (seq, body, source, code) in sent.items():
        message = by_case[name]
        assert message.headers is not None
        assert message.data == body, name
        assert message.headers["Minqing-Dead-Reason-Code"] == code, name
        assert message.headers["Minqing-Dead-Reason"], name
        assert message.headers["Minqing-Original-Subject"] == intake.subject(source)
        assert message.headers["Minqing-Original-Sequence"] == str(seq)
        assert message.subject == f"{intake.settings.dlq_subject_prefix}.ingress.{source}"
    assert await matter_count(intake) == matters_before + 1

    # Each has its "accepted": false outcome (by ingress id where it had a readable one).
    published = await intake.outcomes(1)
    refused = [o for o in published if o["accepted"] is False]
    codes = {o["errors"][0]["code"] for o in refused}
    assert {code for *_, code in BAD.values()} <= codes
    unknown = json.loads(sent["unknown category"][1])["id"]
    outcome = await intake.outcome(unknown)
    assert outcome["accepted"] is False
    assert outcome["errors"][0] == {
        "code": "unknown_category",
        "field": "data.category",
        "message": outcome["errors"][0]["message"],
    }
    assert "street_lights" in outcome["errors"][0]["message"]  # the valid codes are listed

    # Listed over HTTP with the reason code and the subject; the service stays ready.
    letters = (await intake.client.get("/api/v1/dead-letters?limit=100")).json()
    listed = {(d["reason_code"], d["subject"]) for d in letters}
    for _, _, source, code in sent.values():
        assert (code, intake.subject(source)) in listed
    assert (await intake.client.get("/readyz")).status_code == 200


# name -> (body, headers, subject's source, expected reason code): refused before the data is
# read, each with the id its sender knows it by.
REFUSED_AT_THE_ENVELOPE: dict[str, tuple[bytes, dict[str, str], str, str]] = {
    name: BAD[name]
    for name in (
        "wrong type",
        "source not matching the subject",
        "unknown source",
        "over the size limit",
        "another content type",
    )
}


def _binary_with_wrong_type() -> tuple[bytes, dict[str, str], str, str]:
    headers, body = binary(cloudevent(report(), type="minqing.ingress.complaint"))
    return body, headers, "hotline_12345", "wrong_type"


def _broken_after_the_id() -> tuple[bytes, dict[str, str], str, str]:
    event = json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "data": {"id": "x"}})
    return event.encode()[:-1] + b', "source": "/hot', STRUCTURED, "hotline_12345", "not_json"


async def test_a_message_refused_at_the_envelope_is_answered_under_its_cloudevent_id(
    intake: Intake,
) -> None:
    cases = {name: (*fields, None) for name, fields in REFUSED_AT_THE_ENVELOPE.items()}
    cases["binary mode, wrong type"] = (*_binary_with_wrong_type(), None)
    cases["JSON broken after the id"] = (*_broken_after_the_id(), None)
    cases["no id, a Nats-Msg-Id"] = (b"\xff no id", STRUCTURED, "visit", "not_utf8", None)
    cases["no id at all"] = (b"[not, json", STRUCTURED, "visit", "not_json", None)
    for name, (body, headers, source, code, _) in list(cases.items()):
        # Fresh ids: the module's other tests send the same cases.
        body = body.replace(b'"id": "', b'"id": "' + uuid.uuid4().hex.encode() + b"-")
        if "ce-id" in headers:
            headers = {**headers, "ce-id": str(uuid.uuid4())}
        if name == "no id, a Nats-Msg-Id":
            headers = {**headers, "Nats-Msg-Id": f"sent-{uuid.uuid4()}"}
        seq = await intake.publish(body, headers, source=source)
        cases[name] = (body, headers, source, code, seq)

    for name, (body, headers, source, code, seq) in cases.items():
        if "ce-id" in headers:
            expected = headers["ce-id"]
        elif "Nats-Msg-Id" in headers:
            expected = headers["Nats-Msg-Id"]
        elif name == "no id at all":
            expected = f"{intake.settings.ingress_stream_name}/{seq}"
        else:
            expected = body.split(b'"id": "')[1].split(b'"')[0].decode()
        outcome = await intake.outcome(expected, source)
        assert outcome["ingress_id"] == expected, name
        assert outcome["accepted"] is False, name
        assert outcome["errors"][0]["code"] == code, name


def _covers(pattern: str, subject: str) -> bool:
    """Whether a NATS subject filter matches a subject."""
    tokens, wanted = pattern.split("."), subject.split(".")
    for i, token in enumerate(tokens):
        if token == ">":
            return len(wanted) > i
        if i >= len(wanted) or token not in ("*", wanted[i]):
            return False
    return len(tokens) == len(wanted)


async def test_a_message_on_a_subject_no_consumer_reads_is_refused_and_answered(
    intake: Intake,
) -> None:
    prefix, s = intake.settings.ingress_subject_prefix, intake.settings
    progress = json.dumps(_ce({"issue_id": "x"}, source="/civil_affairs")).encode()
    await intake.js.publish(
        f"{prefix}.civil_affairs.progress",
        progress,
        headers=STRUCTURED,
        stream=s.ingress_stream_name,
    )  # followup's: passed over here
    # subject -> (the source its outcome is kept under, reason code)
    strays = {
        f"{prefix}.hotline_12345.complaint": ("hotline_12345", "unknown_kind"),
        f"{prefix}.hotline_12345": ("unknown", "wrong_subject"),
        f"{prefix}.hotline_12345.report.v2": ("unknown", "wrong_subject"),
    }
    sent = {}
    for subject in strays:
        kind = subject.removeprefix(prefix + ".").partition(".")[2] or "report"
        event = _ce(type=f"minqing.ingress.{kind}")
        await intake.js.publish(
            subject, json.dumps(event).encode(), headers=STRUCTURED, stream=s.ingress_stream_name
        )
        sent[subject] = event["id"]

    for subject, (source, code) in strays.items():
        outcome = await intake.outcome(sent[subject], source)
        assert outcome["accepted"] is False, subject
        assert outcome["errors"][0]["code"] == code, subject

    async def dead_reasons() -> dict[str, str]:
        return {
            m.headers["Minqing-Original-Subject"]: m.headers["Minqing-Dead-Reason-Code"]
            for m in await stream_messages(s, s.dlq_stream_name)
            if m.headers
        }

    # The outcome and the dead letter are two messages: the dead letter may land just after.
    reasons = await eventually(dead_reasons, lambda found: set(strays) <= set(found))
    for subject, (_, code) in strays.items():
        assert reasons[subject] == code, subject
    assert f"{prefix}.civil_affairs.progress" not in reasons

    # Every one of these subjects has a reader, and nothing waits for it in the stream.
    subjects = [*strays, f"{prefix}.civil_affairs.progress"]

    async def readers() -> list[ConsumerInfo]:
        found = await intake.js.consumers_info(s.ingress_stream_name)
        return [c for c in found if all(_read_by(c, subject) for subject in subjects)]

    await eventually(
        readers, lambda cs: any(not c.num_pending and not c.num_ack_pending for c in cs)
    )


def _read_by(consumer: ConsumerInfo, subject: str) -> bool:
    filters = consumer.config.filter_subjects or [consumer.config.filter_subject or ">"]
    return any(_covers(f, subject) for f in filters)


async def test_a_refusal_is_logged_with_its_reason_code_and_never_as_an_error(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    unknown = _ce(report(category="unicorns"))
    wrong = _ce(type="minqing.issue.reported")
    before = len(await stream_messages(intake.settings, intake.settings.dlq_stream_name))
    positions = {}
    for event, code in ((unknown, "unknown_category"), (wrong, "wrong_type")):
        seq = await intake.publish(json.dumps(event).encode(), STRUCTURED)
        positions[f"{intake.subject()}#{seq}"] = code
    await intake.dead(before + 2)

    for where, code in positions.items():
        logged = [r for r in caplog.records if where in r.getMessage()]
        assert logged, where
        assert all(r.levelno in (logging.INFO, logging.WARNING) for r in logged), logged
        assert any(code in r.getMessage() for r in logged), [r.getMessage() for r in logged]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_dead_letter_resubmitted_with_a_fix_is_accepted(intake: Intake) -> None:
    event = _ce(report(category="unicorns"))
    await intake.publish(json.dumps(event).encode(), STRUCTURED)
    refused = await intake.outcome(event["id"])
    assert refused["accepted"] is False
    letters = (await intake.client.get("/api/v1/dead-letters?limit=100")).json()
    [letter] = [d for d in letters if event["id"] in d["payload"]]
    assert letter["status"] == "dead" and letter["reason_code"] == "unknown_category"

    fixed = {**event, "data": {**event["data"], "category": "street_lights"}}
    url = f"/api/v1/dead-letters/{letter['id']}/resubmit"
    response = await intake.client.post(url, content=json.dumps(fixed).encode())
    assert response.status_code == 202, response.text

    outcome = await eventually(lambda: intake.outcome(event["id"]), lambda o: o["accepted"] is True)
    assert outcome["issue_id"]
    again = await intake.client.post(url)
    assert again.status_code == 409
    statuses = (await intake.client.get("/api/v1/dead-letters?status=resubmitted")).json()
    assert letter["id"] in {d["id"] for d in statuses}
    assert (await intake.client.post("/api/v1/dead-letters/999999999/resubmit")).status_code == 404


async def test_a_dead_letter_resubmitted_unchanged_is_processed_again(intake: Intake) -> None:
    event = _ce(report(village="atlantis"))
    await intake.publish(json.dumps(event).encode(), STRUCTURED)
    await intake.outcome(event["id"])
    letters = (await intake.client.get("/api/v1/dead-letters?limit=100")).json()
    [letter] = [d for d in letters if event["id"] in d["payload"]]
    before = len(await stream_messages(intake.settings, intake.settings.dlq_stream_name))

    response = await intake.client.post(f"/api/v1/dead-letters/{letter['id']}/resubmit")
    assert response.status_code == 202

    dead = await intake.dead(before + 1)
    assert dead[-1].headers is not None
    assert dead[-1].headers["Minqing-Resubmit-Of"] == str(letter["id"])
    assert dead[-1].headers["Minqing-Dead-Reason-Code"] == "unknown_village"


async def test_metrics_count_accepted_and_refused_messages_by_source_and_reason(
    intake: Intake,
) -> None:
    accepted = cloudevent(report(), source="/civil_affairs")
    await intake.outcome(await intake.send(accepted, source="civil_affairs"), "civil_affairs")
    event = _ce(report(category="unicorns"), source="/civil_affairs")
    await intake.publish(json.dumps(event).encode(), STRUCTURED, source="civil_affairs")
    await intake.outcome(event["id"], "civil_affairs")

    text = await eventually(
        lambda: _metrics(intake),
        lambda t: (
            'minqing_ingress_rejected_total{reason="unknown_category",source="civil_affairs"}' in t
        ),
    )
    assert 'minqing_ingress_accepted_total{source="civil_affairs"} 1.0' in text
    assert 'minqing_dead_letters_total{consumer="intake-ingress",reason="unknown_category"}' in text
    assert 'minqing_dead_letters_stored{consumer="intake-ingress",status="dead"}' in text


async def _metrics(intake: Intake) -> str:
    response = await intake.client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_the_served_contract_covers_ingress_outcomes_dead_letters_and_events(
    intake: Intake,
) -> None:
    document = (await intake.client.get("/asyncapi.json")).json()
    addresses = {c["address"] for c in document["channels"].values()}
    s = intake.settings
    assert {
        f"{s.ingress_subject_prefix}.{{source}}.report",
        f"{s.outcomes_subject_prefix}.{{source}}",
        f"{s.dlq_subject_prefix}.ingress.{{source}}",
        f"{s.subject_prefix}.issue.reported",
    } <= addresses
