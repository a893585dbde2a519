"""Build and publish canonical events directly, standing in for the other services."""

from __future__ import annotations

from datetime import UTC, date, datetime

import nats

from minqing.shared.contract.envelope import Envelope, wrap
from minqing.shared.contract.events import Event, IssueAssigned, IssueReported
from minqing.shared.domain.ids import new_id
from minqing.shared.messaging.streams import ensure_stream, stream_config
from minqing.shared.service.settings import Settings

FRIDAY_MORNING = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 in Shihu


def reported(
    issue_id: str | None = None, *, category: str = "roads", village: str = "xuma"
) -> Envelope:
    event = IssueReported(
        title="Broken road",
        description="Road repair keeps the harvester out of the field",
        category=category,
        village=village,
        source="village_branch",
    )
    return envelope(event, issue_id or new_id(), actor="system:village_branch", service="intake")


def assigned(issue_id: str, *, unit: str = "town_construction", number: int = 1) -> Envelope:
    event = IssueAssigned(
        unit=unit,
        responsible_person_id="xuma-secretary",
        responsible_person_name="Xu Haijun",
        deadline=date(2026, 12, 18),
        working_days=15,
        assignment_no=number,
        reason="routed on report",
        category="roads",
        village="xuma",
        calendar="weekdays",
    )
    return envelope(event, issue_id, actor="service:assignment", service="assignment")


def envelope(event: Event, issue_id: str, *, actor: str, service: str) -> Envelope:
    return wrap(event, issue_id=issue_id, service=service, actor=actor, time=FRIDAY_MORNING)


async def publish_raw(settings: Settings, *payloads: tuple[str, bytes, str]) -> None:
    """Publish (subject suffix, body, message id) straight to the stream, creating it."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream_config(settings))
        for suffix, body, msg_id in payloads:
            await js.publish(
                f"{settings.subject_prefix}.{suffix}", body, headers={"Nats-Msg-Id": msg_id}
            )
    finally:
        await nc.close()


async def publish(settings: Settings, *envelopes: Envelope) -> None:
    """Publish events as their producers would."""
    await publish_raw(settings, *((e.short_type, e.to_json(), e.id) for e in envelopes))
