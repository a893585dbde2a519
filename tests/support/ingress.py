"""A running intake with a NATS connection, for tests of the department-system channel."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent
from nats.aio.client import Client
from nats.js.api import RawStreamMsg
from nats.js.client import JetStreamContext

from minqing.services.intake.app import create_app
from minqing.shared.messaging.access import connect_options, service_inbox
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, serve, stream_messages


def report(**overrides: Any) -> dict[str, Any]:
    """A valid report as a department system sends it, with a fresh ticket id."""
    data: dict[str, Any] = {
        "title": "Street light out on Shiguan Road",
        "description": "The third lamp north of the bridge has been dark for a week.",
        "category": "street_lights",
        "village": "sanqi",
        "reporter": {"name": "Li Si", "phone": "13812345678"},
        "external_ref": f"T-{uuid.uuid4().hex[:12]}",
    }
    data.update(overrides)
    return data


def cloudevent(data: Any, *, source: str = "/hotline_12345", **attributes: Any) -> CloudEvent:
    attrs = {"type": "minqing.ingress.report", "source": source, "id": str(uuid.uuid4())}
    attrs.update(attributes)
    return CloudEvent(attrs, data)


def structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    headers, body = to_structured(event)
    return dict(headers), body


def binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    headers, body = to_binary(event)
    return {**headers, "content-type": "application/json"}, body


@dataclass
class Intake:
    settings: Settings
    client: httpx.AsyncClient
    runtime: Runtime
    nc: Client
    js: JetStreamContext

    def subject(self, source: str = "hotline_12345") -> str:
        return f"{self.settings.ingress_subject_prefix}.{source}.report"

    async def publish(
        self, body: bytes, headers: dict[str, str] | None = None, *, source: str = "hotline_12345"
    ) -> int:
        ack = await self.js.publish(
            self.subject(source), body, headers=headers, stream=self.settings.ingress_stream_name
        )
        return int(ack.seq)

    async def send(self, event: CloudEvent, *, source: str = "hotline_12345") -> str:
        headers, body = structured(event)
        await self.publish(body, headers, source=source)
        return str(event["id"])

    async def outcome(self, ingress_id: str, source: str = "hotline_12345") -> dict[str, Any]:
        """The outcome over HTTP, once there."""
        response = await eventually(
            lambda: self.client.get(f"/api/v1/ingress/{source}/{ingress_id}"),
            lambda r: r.status_code == 200,
        )
        result: dict[str, Any] = response.json()
        return result

    async def dead(self, count: int) -> list[RawStreamMsg]:
        """The dead-letter stream, once it holds ``count`` messages."""
        return await eventually(
            lambda: stream_messages(self.settings, self.settings.dlq_stream_name),
            lambda m: len(m) >= count,
        )

    async def outcomes(self, count: int) -> list[dict[str, Any]]:
        """The outcomes stream's messages, once it holds ``count``."""
        messages = await eventually(
            lambda: stream_messages(self.settings, self.settings.outcomes_stream_name),
            lambda m: len(m) >= count,
        )
        return [json.loads(m.data) for m in messages]


@contextlib.asynccontextmanager
async def running_intake(settings: Settings) -> AsyncIterator[Intake]:
    app = create_app(settings)
    async with serve(app) as client:
        # As intake's own user where the server has users (none otherwise).
        nc = await nats.connect(
            settings.nats_url,
            **connect_options(settings.nats_credentials, service_inbox("intake")),
        )
        try:
            yield Intake(settings, client, app.state.runtime, nc, nc.jetstream())
        finally:
            await nc.close()
