"""Projection's composition root: consumes every canonical event, serves the read models."""

from __future__ import annotations

from fastapi import FastAPI

from services.projection.api import build_router
from services.projection.handlers import record_batch
from services.projection.store import plumbing
from shared import reference
from shared.clock import Clock, system_clock
from shared.contract import consumed_types
from shared.runtime import build_runtime, create_service_app
from shared.settings import Settings


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    rt = build_runtime("projection", settings or Settings(), plumbing, clock=clock)
    reference.activate(rt.reference)
    rt.consume(record_batch, consumed_types("projection"))
    app = create_service_app(
        rt,
        title="Minqing projection",
        description="The list of matters and each matter's full audit trail, for supervisors.",
    )
    app.include_router(build_router(rt))
    return app
