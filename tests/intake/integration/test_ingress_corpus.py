"""A generated corpus of malformed ingress messages, interleaved with valid ones: every
malformed one lands in the dead-letter stream with an outcome its sender finds by its
CloudEvent id, every valid one becomes a matter with an accepted outcome, and the service
stays ready."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from sqlalchemy import func, select

from minqing.services.intake.store import matters
from tests.support.harness import eventually, fresh_database, isolated_settings
from tests.support.ingress import Intake, report, running_intake

SOURCES = ["hotline_12345", "grid_center", "visit", "civil_affairs"]
STRUCTURED = {"content-type": "application/cloudevents+json"}


@dataclass
class Case:
    """One message to publish; ``valid`` ones get a fresh id and ticket when sent."""

    body: bytes
    headers: dict[str, str]
    source: str
    valid: bool = False
    binary: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    kind: str = "report"  # the subject's last token
    ingress_id: str | None = None  # the CloudEvent id its sender knows it by, if it has one


def _event(data: Any, source: str = "hotline_12345", **attributes: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/{source}",
        "type": "minqing.ingress.report",
        "data": data,
    }
    event.update(attributes)
    return event


def _structured(event: Any, source: str = "hotline_12345", kind: str = "report") -> Case:
    known = event.get("id") if isinstance(event, dict) else None
    ingress_id = known if isinstance(known, str) else None
    return Case(
        json.dumps(event).encode(), dict(STRUCTURED), source, kind=kind, ingress_id=ingress_id
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
not_a_string = st.none() | st.booleans() | st.integers() | st.lists(st.integers(), max_size=3)
controls = st.sampled_from(["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\x9f"])
report_fields = st.sampled_from(["title", "description", "category", "village"])


@st.composite
def malformed(draw: st.DrawFn) -> Case:
    kind = draw(st.integers(0, 14))
    if kind == 0:  # arbitrary bytes
        return Case(draw(st.binary(max_size=200)), dict(STRUCTURED), "hotline_12345")
    if kind == 1:  # a JSON value that is not a CloudEvent object
        value = draw(
            json_values.filter(lambda v: not isinstance(v, dict) or "specversion" not in v)
        )
        return Case(json.dumps(value).encode(), dict(STRUCTURED), "hotline_12345")
    if kind == 2:  # bad UTF-8 inside an otherwise good event
        body = json.dumps(_event(report())).encode()
        at = draw(st.integers(0, len(body)))
        return Case(body[:at] + b"\xff\xfe" + body[at:], dict(STRUCTURED), "hotline_12345")
    if kind == 3:  # an attribute of the wrong type
        name = draw(st.sampled_from(["id", "source", "type", "specversion"]))
        return _structured(_event(report(), **{name: draw(not_a_string)}))
    if kind == 4:  # a report field of the wrong type
        return _structured(_event(report(**{draw(report_fields): draw(not_a_string)})))
    if kind == 5:  # control characters or NUL in a field
        text = "lamp" + draw(controls) + "out"
        name = draw(st.sampled_from(["title", "description", "external_ref", "category"]))
        return _structured(_event(report(**{name: text})))
    if kind == 6:  # a huge field
        size = draw(st.integers(5001, 20000))
        return _structured(_event(report(**{draw(report_fields): "x" * size})))
    if kind == 7:  # the CloudEvent's source is another sender than the subject's
        other = draw(st.sampled_from(SOURCES[1:]))
        return _structured(_event(report(), source=other), source="hotline_12345")
    if kind == 8:  # an unknown category or village
        name = draw(st.sampled_from(["category", "village"]))
        value = "zz-" + draw(st.text("abcdefghij", min_size=1, max_size=10))
        return _structured(_event(report(**{name: value})))
    if kind == 9:  # a wrong type
        type_ = draw(
            st.text(min_size=1, max_size=30).filter(lambda t: t != "minqing.ingress.report")
        )
        return _structured(_event(report(), type=type_))
    if kind == 10:  # an unknown source, consistently on subject and attribute
        token = "zz" + draw(st.text("abcdefghij_", min_size=1, max_size=10))
        return _structured(_event(report(), source=token), source=token)
    if kind == 11:  # binary mode without an id
        headers, body = to_binary(CloudEvent(_attrs(), report()))
        headers = {k: v for k, v in headers.items() if k != "ce-id"}
        return Case(body, headers, "hotline_12345")
    if kind == 12:  # a field missing or one too many
        data = report()
        if draw(st.booleans()):
            del data[draw(st.sampled_from(["title", "description", "external_ref", "village"]))]
        else:
            data[draw(st.sampled_from(["colour", "priority", "Title"]))] = "x"
        return _structured(_event(data))
    if kind == 13:  # a kind of message no consumer reads
        name = draw(st.text("abcdefghij", min_size=1, max_size=10))
        return _structured(_event(report(), type=f"minqing.ingress.{name}"), kind=name)
    # data that is not an object
    return _structured(_event(draw(json_values.filter(lambda v: not isinstance(v, dict)))))


def _attrs(source: str = "hotline_12345") -> dict[str, str]:
    return {"type": "minqing.ingress.report", "source": f"/{source}", "id": str(uuid.uuid4())}


titles = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=60)


@st.composite
def valid(draw: st.DrawFn) -> Case:
    source = draw(st.sampled_from(SOURCES))
    data = report(title=draw(titles), village=draw(st.sampled_from(["sanqi", "Xuma", "三岐村"])))
    return Case(b"", {}, source, valid=True, binary=draw(st.booleans()), data=data)


@dataclass
class Seen:
    dead: dict[str, Msg] = field(default_factory=dict)  # X-Case -> dead letter
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # ingress id -> outcome


@pytest.fixture(scope="module")
async def corpus_intake(
    nats_url: str, server_db_url: str, template_db: str
) -> AsyncIterator[tuple[Intake, Seen]]:
    async with fresh_database(server_db_url, template_db) as url:
        config = isolated_settings(nats_url, url, max_ingress_bytes=8192)
        async with running_intake(config) as intake:
            seen = Seen()

            async def on_dead(message: Msg) -> None:
                seen.dead[(message.headers or {}).get("X-Case", "?")] = message

            async def on_outcome(message: Msg) -> None:
                outcome = json.loads(message.data)
                seen.outcomes[str(outcome.get("ingress_id"))] = outcome

            dlq = await intake.js.subscribe(
                f"{config.dlq_subject_prefix}.>", stream=config.dlq_stream_name, cb=on_dead
            )
            outcomes = await intake.js.subscribe(
                f"{config.outcomes_subject_prefix}.>",
                stream=config.outcomes_stream_name,
                cb=on_outcome,
            )
            yield intake, seen
            await dlq.unsubscribe()
            await outcomes.unsubscribe()


async def matter_count(intake: Intake) -> int:
    async with intake.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(matters)) or 0)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(corpus=st.lists(st.one_of(malformed(), valid()), min_size=4, max_size=24))
async def test_malformed_messages_are_dead_lettered_and_valid_ones_become_matters(
    corpus_intake: tuple[Intake, Seen], corpus: list[Case]
) -> None:
    intake, seen = corpus_intake
    before = await matter_count(intake)
    tag = uuid.uuid4().hex[:8]
    bad: set[str] = set()
    refused: dict[str, str] = {}  # CloudEvent id -> source, of the malformed ones with an id
    good: list[str] = []
    acks = []
    for i, case in enumerate(corpus):
        name = f"{tag}-{i}"
        body, headers = case.body, case.headers
        if case.valid:  # fresh ids each time: hypothesis replays examples
            data = {**case.data, "external_ref": f"C-{uuid.uuid4().hex}"}
            event = CloudEvent(_attrs(case.source), data)
            raw_headers, body = (to_binary if case.binary else to_structured)(event)
            headers = dict(raw_headers)
            good.append(str(event["id"]))
        else:
            bad.add(name)
            if case.ingress_id is not None:
                refused[case.ingress_id] = case.source
        subject = f"{intake.settings.ingress_subject_prefix}.{case.source}.{case.kind}"
        acks.append(
            await intake.js.publish_async(subject, body, headers={**headers, "X-Case": name})
        )
    await intake.js.publish_async_completed()
    assert all(a.done() and a.exception() is None for a in acks)
    await asyncio.gather(*acks)

    await eventually(lambda: _arrived(seen, bad, good), lambda ok: ok, within=20)
    for name in bad:
        assert seen.dead[name].headers and seen.dead[name].headers["Minqing-Dead-Reason-Code"]
    for ingress_id in good:
        assert seen.outcomes[ingress_id]["accepted"] is True, seen.outcomes[ingress_id]
    for ingress_id, source in refused.items():
        response = await intake.client.get(f"/api/v1/ingress/{source}/{ingress_id}")
        assert response.status_code == 200, (source, ingress_id)
        assert response.json()["accepted"] is False
    assert await matter_count(intake) == before + len(good)
    assert (await intake.client.get("/readyz")).status_code == 200


async def _arrived(seen: Seen, bad: set[str], good: list[str]) -> bool:
    return bad <= set(seen.dead) and all(g in seen.outcomes for g in good)
