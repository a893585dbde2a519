"""Reporters' personal information over real NATS and PostgreSQL: who may read a matter's
reporters in full (each reading recorded on the matter's audit trail, with the caller as
actor); dead letters masked unless an operator asks to see them raw (logged); erasure by
HTTP and by `minqing reporter erase` (the contact gone, the event on each matter, the audit
chain still verifies, a reply still waiting never sent)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.intake.app import create_app as intake_app
from minqing.services.intake.residents.tables import supervisors
from minqing.services.intake.store import plumbing, reporter_contacts
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.contract.events import IssueLookbackPassed, IssueResolved
from minqing.shared.persistence.db import make_engine, make_sessions
from minqing.shared.service.settings import Settings
from tests.support.events import envelope, publish
from tests.support.harness import eventually, serve
from tests.support.identity import AS
from tests.support.webhook import Receiver, answering_to, webhook_receiver

REPORT = {  # routed to town_construction
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps between the school and the market have been dark for a week.",
    "category": "street_lights",
    "village": "shihu",
    "source": "hotline_12345",
    "reporter": {"name": "Zhang San", "phone": "13800001234"},
}
WHY = {"reason": "call back about the repair"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def pii_settings(settings: Settings, receiver: Receiver) -> Settings:
    return answering_to(settings, receiver)


@dataclass
class Town:
    settings: Settings
    intake: httpx.AsyncClient
    projection: httpx.AsyncClient

    async def trail(self, issue_id: str) -> list[dict[str, Any]]:
        response = await self.projection.get(f"/api/v1/issues/{issue_id}/history")
        return response.json()["events"] if response.status_code == 200 else []

    async def wait_for(self, issue_id: str, short_type: str, count: int = 1) -> list[Any]:
        def of_type(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in events if e["type"] == f"minqing.{short_type}"]

        events = await eventually(
            lambda: self.trail(issue_id), lambda got: len(of_type(got)) >= count
        )
        return of_type(events)

    async def report_assigned(self) -> str:
        created = await self.intake.post("/api/v1/reports", json=REPORT)
        assert created.status_code == 201, created.text
        issue_id: str = created.json()["issue_id"]
        await self.wait_for(issue_id, "issue.assigned")

        async def seen_by_construction() -> int:
            got = await self.intake.get(
                f"/api/v1/issues/{issue_id}/reports", headers=AS["construction"]
            )
            return got.status_code

        await eventually(seen_by_construction, lambda code: code == 200)  # intake knows the unit
        return issue_id

    def minqing(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINQING_")}
        env |= {
            "MINQING_DATABASE_URL": self.settings.database_url,
            "MINQING_NATS_URL": self.settings.nats_url,
            "MINQING_STREAM_NAME": self.settings.stream_name,
            "MINQING_SUBJECT_PREFIX": self.settings.subject_prefix,
        }
        command = [sys.executable, "-m", "minqing", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
async def town(pii_settings: Settings) -> AsyncIterator[Town]:
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serve(intake_app(pii_settings)))
        await stack.enter_async_context(serve(assignment_app(pii_settings)))
        projection = await stack.enter_async_context(serve(projection_app(pii_settings)))
        yield Town(pii_settings, intake, projection)


async def contact_of(settings: Settings, reporter_ref: str) -> Any:
    engine = make_engine(settings.database_url, settings)
    try:
        async with make_sessions(engine)() as session:
            query = select(reporter_contacts).where(
                reporter_contacts.c.reporter_ref == reporter_ref
            )
            return (await session.execute(query)).first()
    finally:
        await engine.dispose()


async def test_the_inspector_and_the_assigned_unit_read_the_contact_and_each_reading_is_recorded(
    town: Town,
) -> None:
    issue_id = await town.report_assigned()
    url = f"/api/v1/issues/{issue_id}/reporters"

    for who in ("inspector", "construction"):
        read = await town.intake.get(url, params=WHY, headers=AS[who])
        assert read.status_code == 200, read.text
        [contact] = read.json()
        assert (contact["name"], contact["phone"]) == ("Zhang San", "13800001234")
        assert contact["reporter_ref"].startswith("rpt_")
    revealed = await town.wait_for(issue_id, "issue.contact_revealed", 2)
    assert [e["actor"] for e in revealed] == ["person:inspector", "person:construction"]
    assert all(e["data"]["reason"] == WHY["reason"] for e in revealed)
    assert all(e["data"]["reporter_refs"] == [contact["reporter_ref"]] for e in revealed)
    assert "Zhang San" not in str(revealed) and "13800001234" not in str(revealed)
    assert "call back about the repair" in revealed[0]["sentence"]["en"]

    # Another unit: no such matter. A supervisor: the matrix says no. No reason: refused.
    other = await town.intake.get(url, params=WHY, headers=AS["water"])
    assert other.status_code == 404, other.text
    supervisor = await town.intake.get(url, params=WHY, headers=AS["supervisor"])
    assert supervisor.status_code == 403, supervisor.text
    unreasoned = await town.intake.get(url, headers=AS["inspector"])
    assert unreasoned.status_code == 422, unreasoned.text
    await asyncio.sleep(0.5)
    assert len(await town.wait_for(issue_id, "issue.contact_revealed", 2)) == 2  # none recorded


async def test_erasure_over_http_drops_the_contact_and_the_waiting_reply_and_the_trail_verifies(
    town: Town, receiver: Receiver
) -> None:
    issue_id = await town.report_assigned()
    [report] = (await town.intake.get(f"/api/v1/issues/{issue_id}/reports")).json()
    ref = report["reporter_ref"]
    # The gateway is down: the reply to the resolution waits, pending.
    receiver.down = True
    resolved = IssueResolved(
        unit="town_construction",
        summary="Six lamps replaced",
        resolved_by="wu-jun",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
    )
    await publish(
        town.settings, envelope(resolved, issue_id, actor="person:wu-jun", service="followup")
    )

    async def replies() -> list[dict[str, Any]]:
        got = await town.intake.get(f"/api/v1/issues/{issue_id}/replies")
        result: list[dict[str, Any]] = got.json() if got.status_code == 200 else []
        return result

    await eventually(replies, lambda rs: len(rs) == 1 and rs[0]["attempts"] >= 1)

    refused = await town.intake.delete(
        f"/api/v1/reporters/{ref}", params=WHY, headers=AS["supervisor"]
    )
    assert refused.status_code == 403, refused.text
    erased = await town.intake.delete(
        f"/api/v1/reporters/{ref}",
        params={"reason": "asked to be forgotten"},
        headers=AS["operator"],
    )
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"reporter_ref": ref, "issue_ids": [issue_id]}
    assert await contact_of(town.settings, ref) is None
    again = await town.intake.delete(f"/api/v1/reporters/{ref}", params=WHY, headers=AS["operator"])
    assert again.status_code == 404

    [event] = await town.wait_for(issue_id, "issue.reporter_erased")
    assert event["actor"] == "person:operator"
    assert event["data"] == {"reporter_ref": ref, "reason": "asked to be forgotten"}
    # Nothing left to reveal, and nothing recorded for it.
    nothing = await town.intake.get(
        f"/api/v1/issues/{issue_id}/reporters", params=WHY, headers=AS["inspector"]
    )
    assert nothing.status_code == 200 and nothing.json() == []

    # The gateway is back: the waiting reply is never sent.
    receiver.down = False
    await asyncio.sleep(1.0)  # several rounds of the reply worker
    assert receiver.received == []
    [reply] = await replies()
    assert reply["status"] == "dropped"
    # Closed later: no reply is queued for the erased reporter.
    closed = IssueLookbackPassed(
        visitor="grid-7",
        notes="all lit",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
        within_window=True,
    )
    await publish(
        town.settings, envelope(closed, issue_id, actor="person:grid-7", service="followup")
    )
    await town.wait_for(issue_id, "issue.lookback_passed")
    await asyncio.sleep(1.0)  # intake's residents consumer has had it too
    assert [r["status"] for r in await replies()] == ["dropped"]
    assert receiver.received == []

    verified = await asyncio.to_thread(town.minqing, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact" in verified.stdout
    kinds = [e["type"] for e in await town.trail(issue_id)]
    assert "minqing.issue.contact_revealed" not in kinds


async def test_erasure_by_the_command_records_a_system_actor_and_the_trail_verifies(
    town: Town,
) -> None:
    issue_id = await town.report_assigned()
    [report] = (await town.intake.get(f"/api/v1/issues/{issue_id}/reports")).json()
    ref = report["reporter_ref"]

    done = await asyncio.to_thread(
        town.minqing, "reporter", "erase", ref, "--reason", "asked to be forgotten"
    )
    assert done.returncode == 0, done.stderr
    assert f"erased {ref}" in done.stdout and issue_id in done.stdout
    assert await contact_of(town.settings, ref) is None

    [event] = await town.wait_for(issue_id, "issue.reporter_erased")  # relayed by intake
    assert event["actor"].startswith("system:cli-")
    assert event["data"]["reason"] == "asked to be forgotten"

    missing = await asyncio.to_thread(town.minqing, "reporter", "erase", ref, "--reason", "again")
    assert missing.returncode == 1 and "no contact kept" in missing.stderr
    verified = await asyncio.to_thread(town.minqing, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact" in verified.stdout


async def supervisor_row(settings: Settings, supervisor_ref: str) -> Any:
    engine = make_engine(settings.database_url, settings)
    try:
        async with make_sessions(engine)() as session:
            query = select(supervisors).where(supervisors.c.supervisor_ref == supervisor_ref)
            return (await session.execute(query)).one()
    finally:
        await engine.dispose()


async def test_a_resident_supervisor_is_erased_over_http_and_by_the_command(town: Town) -> None:
    issue_id = await town.report_assigned()
    url = f"/api/v1/issues/{issue_id}/supervisors"
    refs = []
    for name, phone in (("Li Si", "13600001111"), ("Wang Wu", "13900002222")):
        invited = await town.intake.post(url, json={"name": name, "phone": phone})
        assert invited.status_code == 201, invited.text
        refs.append(invited.json()["supervisor_ref"])
    by_http, by_command = refs

    refused = await town.intake.delete(
        f"/api/v1/supervisors/{by_http}", params=WHY, headers=AS["supervisor"]
    )
    assert refused.status_code == 403, refused.text
    no_reason = await town.intake.delete(f"/api/v1/supervisors/{by_http}", headers=AS["operator"])
    assert no_reason.status_code == 422
    erased = await town.intake.delete(
        f"/api/v1/supervisors/{by_http}",
        params={"reason": "asked to be forgotten"},
        headers=AS["operator"],
    )
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"supervisor_ref": by_http, "issue_id": issue_id}
    row = await supervisor_row(town.settings, by_http)
    assert (row.name, row.phone, row.phone_masked) == (None, None, "136****1111")
    assert (await supervisor_row(town.settings, by_command)).name == "Wang Wu"  # untouched
    again = await town.intake.delete(
        f"/api/v1/supervisors/{by_http}", params=WHY, headers=AS["operator"]
    )
    assert again.status_code == 404
    unknown = await town.intake.delete(
        f"/api/v1/supervisors/sup_{'0' * 26}", params=WHY, headers=AS["operator"]
    )
    assert unknown.status_code == 404

    done = await asyncio.to_thread(
        town.minqing, "resident-supervisor", "erase", by_command, "--reason", "moved away"
    )
    assert done.returncode == 0, done.stderr
    assert f"erased {by_command}" in done.stdout and issue_id in done.stdout
    assert (await supervisor_row(town.settings, by_command)).name is None
    missing = await asyncio.to_thread(
        town.minqing, "resident-supervisor", "erase", by_command, "--reason", "again"
    )
    assert missing.returncode == 1 and "no name or phone kept" in missing.stderr

    first, second = await town.wait_for(issue_id, "issue.supervisor_erased", count=2)
    assert first["actor"] == "person:operator"
    assert first["data"] == {"supervisor_ref": by_http, "reason": "asked to be forgotten"}
    assert second["actor"].startswith("system:cli-")
    assert second["data"] == {"supervisor_ref": by_command, "reason": "moved away"}
    # The references and masked phones stay where the matter's supervisors are listed.
    listed = (await town.intake.get(url)).json()
    assert [(s["supervisor_ref"], s["phone_masked"]) for s in listed] == [
        (by_http, "136****1111"),
        (by_command, "139****2222"),
    ]
    verified = await asyncio.to_thread(town.minqing, "audit", "verify")
    assert verified.returncode == 0, verified.stderr


DEAD = {
    "id": "12345678-1234-4234-8234-123456789012",
    "data": {
        "title": "Lamp out",
        "reporter": {"name": "Zhang San", "phone": "13800001234"},
        "note": "call 139 1234 5678 or 0517-88881234",
    },
}


async def test_dead_letters_are_masked_unless_an_operator_reveals_them_which_is_logged(
    town: Town, caplog: pytest.LogCaptureFixture
) -> None:
    raw = json.dumps(DEAD).encode()
    engine = make_engine(town.settings.database_url, town.settings)
    try:
        async with make_sessions(engine)() as session, session.begin():
            letter = {
                "consumer": "intake-ingress",
                "status": "dead",
                "event_id": DEAD["id"],
                "stream": "MINQING_INGRESS",
                "stream_epoch": 1,
                "stream_seq": 7,
                "subject": "minqing.ingress.hotline_12345.report",
                "deliveries": 1,
                "reason": "unknown category, reporter 13800001234",
                "headers": {},
                "raw": raw,
            }
            await session.execute(insert(plumbing.dead_letters).values(letter))
    finally:
        await engine.dispose()

    masked = await town.intake.get("/api/v1/dead-letters", headers=AS["operator"])
    assert masked.status_code == 200, masked.text
    [shown] = masked.json()
    assert "13800001234" not in shown["payload"] and "Zhang San" not in shown["payload"]
    assert "138****1234" in shown["payload"] and '"name": "Z********"' in shown["payload"]
    assert "139****5678" in shown["payload"] and "0517-******34" in shown["payload"]
    assert DEAD["id"] in shown["payload"]  # the message's id stays whole
    assert shown["payload_base64"] is None and "13800001234" not in shown["reason"]
    assert not [r for r in caplog.records if "revealed" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="minqing.shared.web.http"):
        revealed = await town.intake.get(
            "/api/v1/dead-letters", params={"reveal": "true"}, headers=AS["operator"]
        )
    assert revealed.status_code == 200, revealed.text
    [raw_letter] = revealed.json()
    assert raw_letter["payload"] == raw.decode() and raw_letter["payload_base64"]
    [logged] = [r for r in caplog.records if "revealed" in r.getMessage()]
    assert logged.levelno == logging.WARNING
    assert "person:operator" in logged.getMessage()
    assert str(raw_letter["id"]) in logged.getMessage()

    for who in ("supervisor", "inspector", "construction"):
        refused = await town.intake.get(
            "/api/v1/dead-letters", params={"reveal": "true"}, headers=AS[who]
        )
        assert refused.status_code == 403, (who, refused.text)
