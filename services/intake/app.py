"""Intake's composition root: reports come in over HTTP and leave as ``issue.reported``."""

from __future__ import annotations

from fastapi import FastAPI

from services import catalog
from services.intake.api import build_router
from services.intake.store import SqlReports, plumbing
from shared import reference
from shared.clock import Clock, system_clock
from shared.runtime import build_runtime
from shared.service import create_service_app
from shared.settings import Settings


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()
    rt = build_runtime("intake", settings, plumbing, clock=clock)
    rt.catalog = catalog.consumers()
    ref = reference.load(settings.reference_dir)
    reference.activate(ref)
    app = create_service_app(
        rt, title="Minqing intake", description="Accepts residents' matters from every channel."
    )
    app.include_router(build_router(rt.units_of_work(SqlReports), ref))
    return app
