"""Followup's composition root: tracks assignments, takes resolutions and look-backs."""

from __future__ import annotations

from fastapi import FastAPI

from services.followup.api import build_router
from services.followup.handlers import apply_event
from services.followup.store import plumbing
from shared import reference
from shared.calendar import WorkingCalendar
from shared.clock import Clock, system_clock
from shared.contract import consumed_types
from shared.runtime import build_runtime, create_service_app
from shared.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    calendar: WorkingCalendar | None = None,
) -> FastAPI:
    rt = build_runtime("followup", settings or Settings(), plumbing, clock=clock, calendar=calendar)
    reference.activate(rt.reference)

    # Its own events (resolved, look-back) change its state when they are decided.
    rt.consume_each(
        lambda session, delivery: apply_event(rt, session, delivery),
        consumed_types("followup"),
    )
    app = create_service_app(
        rt,
        title="Minqing followup",
        description="Cancellation by the assigned unit and the look-back visit that verifies it.",
    )
    app.include_router(build_router(rt))
    return app
