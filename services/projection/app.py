"""Projection's composition root: one durable consumer per read model, and the queries."""

from __future__ import annotations

from fastapi import FastAPI

from services import catalog
from services.projection import dashboard
from services.projection.api import build_router
from services.projection.audit_api import build_audit_router
from services.projection.sentences import Names
from services.projection.store import plumbing
from services.projection.views import chosen
from shared import reference
from shared.clock import Clock, system_clock
from shared.runtime import build_runtime
from shared.service import create_service_app
from shared.settings import Settings


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()
    rt = build_runtime("projection", settings, plumbing, clock=clock)
    rt.catalog = catalog.consumers()
    rt.channels = catalog.channels(settings)
    ref = reference.load(settings.reference_dir)
    reference.activate(ref)
    for view in chosen(settings.projection_views):
        # every event, known type or not; the audit trail in stream order (views' ORDERED)
        rt.subscribe(view.NAME, view.apply_batch, None, ordered=view.ORDERED)
    app = create_service_app(
        rt,
        title="Minqing projection",
        description="The list of matters and each matter's full audit trail, for supervisors.",
    )
    names = Names(ref)
    app.include_router(
        build_router(rt.sessions, clock, settings.timezone, names, settings.list_count_limit)
    )
    app.include_router(build_audit_router(rt.sessions, clock))
    dashboard.install(app, names)
    return app
