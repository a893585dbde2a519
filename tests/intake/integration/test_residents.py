"""Residents over real NATS, PostgreSQL and a real webhook receiver: every reporter of a
merged matter is answered, a restart neither loses nor repeats a reply, feedback flags a
re-visit, and supervisors' records are kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from minqing.services.intake.app import create_app
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import IssueLookbackPassed, IssueResolved
from minqing.shared.service.settings import Settings
from tests.support.events import envelope, publish
from tests.support.harness import eventually, serve, stream_messages
from tests.support.webhook import Receiver, answering_to, webhook_receiver

REPORT = {
    "title": "Dangerous bridge over the East and West River",
    "description": "The railing is gone and the deck is cracked.",
    "category": "bridges",
    "village": "sanqi",
    "source": "visit",
    "reporter": {"name": "Wang Wu", "phone": "13912345678"},
}
ALIKE = {
    **REPORT,
    "source": "hotline_12345",
    "title": "Dangerous bridge over the East and West River!",
    "reporter": {"name": "Zhao Liu", "phone": "13787654321"},
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def webhook_settings(settings: Settings, receiver: Receiver) -> Settings:
    return answering_to(
        settings, receiver, duplicate_threshold=85, feedback_base_url="https://minqing.example"
    )


def resolved(issue_id: str) -> Envelope:
    event = IssueResolved(
        unit="town_construction",
        summary="New railing and deck",
        resolved_by="wu-jun",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
    )
    return envelope(event, issue_id, actor="person:wu-jun", service="followup")


def passed(issue_id: str) -> Envelope:
    event = IssueLookbackPassed(
        visitor="grid-7",
        notes="railing solid",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
        within_window=True,
    )
    return envelope(event, issue_id, actor="person:grid-7", service="followup")


async def report_twice(client: httpx.AsyncClient) -> str:
    first = (await client.post("/api/v1/reports", json=REPORT)).json()
    second = (await client.post("/api/v1/reports", json=ALIKE)).json()
    assert second["duplicate_of"] == first["issue_id"]
    issue_id: str = first["issue_id"]
    return issue_id


async def replied_events(settings: Settings) -> list[dict[str, Any]]:
    messages = await stream_messages(settings)
    events = [Envelope.model_validate_json(m.data) for m in messages]
    return [e.data for e in events if e.short_type == "issue.reporter_replied"]


async def test_every_reporter_is_answered_once_and_a_restart_neither_loses_nor_repeats(
    webhook_settings: Settings, receiver: Receiver
) -> None:
    settings = webhook_settings
    async with serve(create_app(settings)) as client:
        issue_id = await report_twice(client)
        await publish(settings, resolved(issue_id))
        await eventually(lambda: _async(receiver.received), lambda r: len(r) == 2)
        assert {b["to"]["name"] for b in receiver.received} == {"Wang Wu", "Zhao Liu"}
        assert {b["to"]["phone"] for b in receiver.received} == {"13912345678", "13787654321"}
        assert receiver.keys == [b["reply_id"] for b in receiver.received]
        assert all(b["stage"] == "resolved" for b in receiver.received)
        assert all(b["feedback_url"] in b["text"] for b in receiver.received)

        # The gateway goes down; the matter is closed: the closed replies wait.
        receiver.down = True
        await publish(settings, passed(issue_id))

        async def replies() -> list[dict[str, Any]]:
            response = await client.get(f"/api/v1/issues/{issue_id}/replies")
            result: list[dict[str, Any]] = response.json()
            return result

        waiting = await eventually(
            replies,
            lambda rs: sum(r["stage"] == "closed" and r["attempts"] >= 1 for r in rs) == 2,
        )
        assert all(r["status"] == "pending" and "503" in r["last_error"] for r in waiting[2:])

    # Restarted with the gateway back: each closed reply once, no resolved reply again.
    receiver.down = False
    async with serve(create_app(settings)) as client:
        await eventually(lambda: _async(receiver.received), lambda r: len(r) == 4)
        await asyncio.sleep(0.5)  # several worker rounds: nothing more may arrive
        assert len(receiver.received) == 4
        assert set(receiver.by_reply().values()) == {1}
        assert sorted(b["stage"] for b in receiver.received) == ["closed"] * 2 + ["resolved"] * 2
        rows = (await client.get(f"/api/v1/issues/{issue_id}/replies")).json()
        assert [r["status"] for r in rows] == ["sent"] * 4

    events = await eventually(lambda: replied_events(settings), lambda e: len(e) == 4)
    assert sorted(e["stage"] for e in events) == ["closed"] * 2 + ["resolved"] * 2
    assert {e["reply_id"] for e in events} == set(receiver.by_reply())
    raw = b"".join(m.data for m in await stream_messages(settings))
    assert b"13912345678" not in raw and b"Zhao Liu" not in raw


async def test_a_dissatisfied_reporter_flags_a_revisit_visible_over_http(
    webhook_settings: Settings, receiver: Receiver
) -> None:
    settings = webhook_settings
    async with serve(create_app(settings)) as client:
        issue_id = await report_twice(client)
        await publish(settings, resolved(issue_id))
        await eventually(lambda: _async(receiver.received), lambda r: len(r) == 2)
        low, high = (b["feedback_url"].rsplit("/", 1)[1] for b in receiver.received)

        # The same reply answered twice at once: one answer counts, the other is refused.
        answer, again = await asyncio.gather(
            client.post(f"/api/v1/feedback/{low}", json={"score": 2, "comment": "shaky"}),
            client.post(f"/api/v1/feedback/{low}", json={"score": 2, "comment": "shaky"}),
        )
        assert sorted([answer.status_code, again.status_code]) == [201, 409], answer.text
        if answer.status_code == 409:
            answer = again
        assert answer.json()["revisit_flagged"] is True
        happy = await client.post(f"/api/v1/feedback/{high}", json={"score": 5})
        assert happy.json()["revisit_flagged"] is False
        bad = await client.post(f"/api/v1/feedback/{high}", json={"score": 6})
        assert bad.status_code == 422
        unknown = await client.post("/api/v1/feedback/" + "x" * 32, json={"score": 3})
        assert unknown.status_code == 404

        [revisit] = (await client.get("/api/v1/revisits")).json()
        assert (revisit["issue_id"], revisit["score"], revisit["comment"]) == (
            issue_id,
            2,
            "shaky",
        )
        rows = (await client.get(f"/api/v1/issues/{issue_id}/replies")).json()
        assert sorted(r["score"] for r in rows) == [2, 5]

    messages = await stream_messages(settings)
    types = [Envelope.model_validate_json(m.data).short_type for m in messages]
    assert types.count("issue.feedback_recorded") == 2
    assert types.count("issue.revisit_flagged") == 1


async def test_residents_supervise_a_facility_project_but_not_a_dispute(
    webhook_settings: Settings, receiver: Receiver
) -> None:
    settings = webhook_settings
    async with serve(create_app(settings)) as client:
        issue_id = await report_twice(client)
        invited = await client.post(
            f"/api/v1/issues/{issue_id}/supervisors",
            json={"name": "Li Si", "phone": "13600001111", "invited_by": "cadre-liu"},
        )
        assert invited.status_code == 201, invited.text
        ref = invited.json()["supervisor_ref"]
        url = f"/api/v1/issues/{issue_id}/supervision"
        check = {"supervisor_ref": ref, "kind": "check", "satisfied": True, "notes": "piles in"}
        assert (await client.post(url, json=check)).status_code == 201
        sign_off = {**check, "kind": "sign_off", "notes": "done"}
        early = await client.post(url, json=sign_off)
        assert early.status_code == 409 and "resolved" in early.text

        await publish(settings, resolved(issue_id))

        async def signed() -> int:
            return (await client.post(url, json=sign_off)).status_code

        assert await eventually(signed, lambda code: code == 201) == 201
        records = (await client.get(url)).json()
        assert [r["kind"] for r in records] == ["check", "sign_off"]
        [supervisor] = (await client.get(f"/api/v1/issues/{issue_id}/supervisors")).json()
        assert supervisor["phone_masked"] == "136****1111" and "name" not in supervisor

        dispute = {**REPORT, "category": "neighbour_dispute", "title": "Fence moved"}
        other = (await client.post("/api/v1/reports", json=dispute)).json()["issue_id"]
        refused = await client.post(
            f"/api/v1/issues/{other}/supervisors",
            json={"name": "Li Si", "invited_by": "cadre-liu"},
        )
        assert refused.status_code == 409 and "livelihood" in refused.text
        missing = await client.post(
            f"/api/v1/issues/{'0' * 26}/supervisors", json={"name": "Li Si", "invited_by": "x"}
        )
        assert missing.status_code == 404

    messages = [Envelope.model_validate_json(m.data) for m in await stream_messages(settings)]
    types = [m.short_type for m in messages]
    assert types.count("issue.supervisor_invited") == 1
    assert types.count("issue.supervision_recorded") == 2
    assert b"Li Si" not in b"".join(m.to_json() for m in messages)


async def _async(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(value)
