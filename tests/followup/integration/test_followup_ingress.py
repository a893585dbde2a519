"""Departments report progress and resolution over NATS, on real NATS and PostgreSQL: a
department resolves by its own ticket id, another unit is refused with an outcome and a
dead letter, progress per milestone (binary mode), and an unknown ticket id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import nats
import pytest
from cloudevents.v1.http import CloudEvent
from nats.js.client import JetStreamContext

from minqing.services.followup.app import create_app
from minqing.shared.contract.events import IssueAssigned, IssueReported
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.support.events import FRIDAY_MORNING, envelope, publish
from tests.support.harness import eventually, serve, stream_messages
from tests.support.ingress import binary, structured


class Followup:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, js: JetStreamContext):
        self.settings, self.client, self.js = settings, client, js

    async def send(
        self, kind: str, data: dict[str, Any], *, source: str = "civil_affairs", mode: Any = None
    ) -> str:
        ingress_id = str(uuid.uuid4())
        event = CloudEvent(
            {"type": f"minqing.ingress.{kind}", "source": f"/{source}", "id": ingress_id}, data
        )
        headers, body = (mode or structured)(event)
        subject = f"{self.settings.ingress_subject_prefix}.{source}.{kind}"
        await self.js.publish(
            subject, body, headers=headers, stream=self.settings.ingress_stream_name
        )
        return ingress_id

    async def outcome(self, ingress_id: str, source: str = "civil_affairs") -> dict[str, Any]:
        response = await eventually(
            lambda: self.client.get(f"/api/v1/ingress/{source}/{ingress_id}"),
            lambda r: r.status_code == 200,
        )
        result: dict[str, Any] = response.json()
        return result

    async def case(self, issue_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/issues/{issue_id}/case")
        return response.json() if response.status_code == 200 else {}

    async def matter(
        self, *, unit: str, source: str = "civil_affairs", plan: str | None = None
    ) -> tuple[str, str]:
        """A matter ``source`` reported with a ticket id, assigned to ``unit``."""
        issue_id, ticket = new_id(), f"CA-{uuid.uuid4().hex[:8]}"
        reported = IssueReported(
            title="Bridge railing broken",
            description="The railing on the east side is gone.",
            category="roads",
            village="xuma",
            source=source,
            external_ref=ticket,
        )
        assigned = IssueAssigned(
            unit=unit,
            responsible_person_id="xuma-secretary",
            responsible_person_name="Xu Haijun",
            deadline=date(2026, 12, 18),
            working_days=15,
            assignment_no=1,
            reason="routed on report",
            category="roads",
            village="xuma",
            calendar="weekdays",
            plan_template=plan,
        )
        await publish(
            self.settings,
            envelope(reported, issue_id, actor=f"system:{source}", service="intake"),
            envelope(assigned, issue_id, actor="service:assignment", service="assignment"),
        )
        await eventually(
            lambda: self.case(issue_id),
            lambda c: c.get("status") == "assigned" and (plan is None or bool(c["milestones"])),
        )
        return issue_id, ticket


@pytest.fixture
async def followup(settings: Settings) -> AsyncIterator[Followup]:
    async with serve(create_app(settings, clock=lambda: FRIDAY_MORNING)) as client:
        nc = await nats.connect(settings.nats_url)
        try:
            yield Followup(settings, client, nc.jetstream())
        finally:
            await nc.close()


async def test_a_department_resolves_its_matter_by_its_own_ticket_id(followup: Followup) -> None:
    issue_id, ticket = await followup.matter(unit="civil_affairs")

    ingress_id = await followup.send(
        "resolution",
        {"external_ref": ticket, "summary": "Railing welded back", "cost": "300.00"},
    )

    outcome = await followup.outcome(ingress_id)
    assert outcome["accepted"] is True
    assert (outcome["issue_id"], outcome["external_ref"]) == (issue_id, ticket)
    case = await followup.case(issue_id)
    assert (case["status"], case["resolved_by"]) == ("resolved", "system:civil_affairs")
    published = await eventually(
        lambda: stream_messages(followup.settings, followup.settings.outcomes_stream_name),
        lambda m: len(m) >= 1,
    )
    assert f'"event_id":"{outcome["event_id"]}"'.encode() in published[0].data


async def test_another_unit_is_refused_with_an_outcome_and_a_dead_letter(
    followup: Followup,
) -> None:
    issue_id, _ = await followup.matter(unit="town_construction")

    ingress_id = await followup.send("resolution", {"issue_id": issue_id, "summary": "Done"})

    outcome = await followup.outcome(ingress_id)
    assert outcome["accepted"] is False
    assert outcome["errors"][0]["code"] == "not_assigned_unit"
    assert "town_construction" in outcome["errors"][0]["message"]
    [dead] = await eventually(
        lambda: stream_messages(followup.settings, followup.settings.dlq_stream_name),
        lambda m: len(m) >= 1,
    )
    assert dead.subject == f"{followup.settings.dlq_subject_prefix}.ingress.civil_affairs"
    assert dead.headers is not None
    assert dead.headers["Minqing-Dead-Reason-Code"] == "not_assigned_unit"
    assert dead.headers["Minqing-Consumer"] == "followup-ingress"
    assert (await followup.case(issue_id))["status"] == "assigned"  # nothing recorded
    letters = (await followup.client.get("/api/v1/dead-letters")).json()
    [letter] = letters["items"] if isinstance(letters, dict) else letters
    resent = await followup.client.post(f"/api/v1/dead-letters/{letter['id']}/resubmit")
    assert resent.status_code == 202, resent.text
    counted = 'minqing_dead_letters_total{consumer="followup-ingress",reason="not_assigned_unit"}'
    await eventually(lambda: followup.client.get("/metrics"), lambda r: counted in r.text)


async def test_progress_per_milestone_in_binary_mode_and_an_unknown_ticket(
    followup: Followup,
) -> None:
    issue_id, ticket = await followup.matter(unit="civil_affairs", plan="bridge_rebuild")

    done = await followup.send(
        "progress",
        {"external_ref": ticket, "milestone": 1, "note": "Survey done", "done": True},
        mode=binary,
    )
    later = await followup.send(
        "progress", {"issue_id": issue_id, "milestone": 2, "note": "Half the piers"}
    )
    unknown = await followup.send("progress", {"external_ref": "CA-none", "milestone": 1})

    assert (await followup.outcome(done))["accepted"] is True
    assert (await followup.outcome(later))["accepted"] is True
    refused = await followup.outcome(unknown)
    assert refused["accepted"] is False
    assert refused["errors"][0]["code"] == "unknown_matter"
    assert refused["errors"][0]["field"] == "data.external_ref"
    milestones = (await followup.case(issue_id))["milestones"]
    assert [m["done"] for m in milestones][:2] == [True, False]
