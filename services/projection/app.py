"""Projection's composition root: one durable consumer per read model, and the queries."""

from __future__ import annotations

from fastapi import FastAPI

from minqing.services.projection import api, audit_api, dashboard, report_api, workbench
from minqing.services.projection.declaration import declaration
from minqing.services.projection.sentences import Names
from minqing.services.projection.store import plumbing
from minqing.services.projection.views import chosen
from minqing.shared.contract import reference
from minqing.shared.domain.clock import Clock, system_clock
from minqing.shared.identity import session_api
from minqing.shared.service.runtime import build_runtime
from minqing.shared.service.settings import Settings
from minqing.shared.web.app import create_service_app
from minqing.shared.web.errors import map_errors


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()
    rt = build_runtime("projection", settings, plumbing, clock=clock)
    own = declaration(settings)  # its part of the contract, served at /asyncapi.json
    rt.catalog, rt.channels = dict(own.consumers), list(own.channels)
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
    # what the routes depend on (api.DeskDep)
    app.state.desk = api.Desk(  # the desk only reads: one round trip per query
        rt.reads, clock, settings.timezone, names, settings.list_count_limit
    )
    app.include_router(api.router)
    app.include_router(audit_api.router)
    app.include_router(report_api.router)
    # the pages log in here (one origin: the front door routes /api/v1/session to the desk)
    session_api.install(app, settings)
    map_errors(app, api.ERRORS)
    dashboard.install(app, names)
    workbench.install(app, settings.reference_dir)  # the unit's workbench, /work
    return app
