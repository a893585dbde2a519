"""Assignment's composition root: consumes reports and failed look-backs, emits assignments."""

from __future__ import annotations

from fastapi import FastAPI

from services.assignment.handlers import apply_event
from services.assignment.store import plumbing
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
    rt = build_runtime(
        "assignment", settings or Settings(), plumbing, clock=clock, calendar=calendar
    )

    rt.consume_each(
        lambda session, delivery: apply_event(rt, session, delivery),
        consumed_types("assignment"),
    )
    return create_service_app(
        rt,
        title="Minqing assignment",
        description="Routes each matter to a responsible unit and person, with a deadline.",
    )
