"""What the services log when all is well: normal events below WARNING, so that a warning in
the log means something needs a look."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import pytest

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.followup.app import create_app as followup_app
from minqing.services.intake.app import create_app as intake_app
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, serve


async def test_a_first_start_and_stop_log_nothing_at_warning_or_above(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with AsyncExitStack() as stack:  # new streams, new durables
        for app in (intake_app, assignment_app, followup_app, projection_app):
            client = await stack.enter_async_context(serve(app(settings)))
            await eventually(lambda c=client: c.get("/readyz"), lambda r: r.status_code == 200)

    loud = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud
    said = [r.getMessage() for r in caplog.records]
    assert any("created durable consumer" in m for m in said)  # still said, at INFO
    assert any(f"created stream {settings.ingress_stream_name}" in m for m in said)
