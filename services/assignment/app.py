"""Assignment's composition root: consumes reports, resolutions and look-backs, emits
assignments; keeps the registry of units; the HTTP edge for send-back, re-assignment,
deadline extension and the registry."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.assignment import routing
from minqing.services.assignment.api import ERRORS, router
from minqing.services.assignment.declaration import declaration
from minqing.services.assignment.handlers import HANDLERS, Rules, recompute_deadlines, sync_registry
from minqing.services.assignment.store import SqlAssignments, plumbing
from minqing.shared.contract import reference
from minqing.shared.domain.calendar import WorkingCalendar, configured
from minqing.shared.domain.clock import Clock, system_clock
from minqing.shared.messaging.dispatch import consumed_types, event_applier
from minqing.shared.persistence.uow import SqlUnitOfWork
from minqing.shared.service.runtime import build_runtime
from minqing.shared.service.settings import Settings
from minqing.shared.web.app import create_service_app
from minqing.shared.web.errors import map_errors


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    calendar: WorkingCalendar | None = None,
) -> FastAPI:
    settings = settings or Settings()
    rt = build_runtime("assignment", settings, plumbing, clock=clock)
    ref = reference.load(settings.reference_dir)
    reference.activate(ref)
    rules = Rules(
        routing=routing.load(settings.reference_dir, ref),
        calendar=calendar or configured(settings.calendar, settings.reference_dir),
        timezone=settings.timezone,
        files=ref.registry(),
    )

    own = declaration(settings)  # its part of the contract, served at /asyncapi.json
    rt.catalog, rt.channels = dict(own.consumers), list(own.channels)

    def unit_of_work(session: AsyncSession) -> SqlUnitOfWork[SqlAssignments]:
        return rt.batch_unit_of_work(session, SqlAssignments(session, clock()))

    rt.subscribe(None, event_applier(HANDLERS, rules, unit_of_work), consumed_types(HANDLERS))
    units = rt.units_of_work(lambda session: SqlAssignments(session, clock()))

    async def sync() -> str:
        return f"{await sync_registry(units, rules)} units changed in the registry"

    # First right after start-up (a change in the reference files becomes events), then
    # again with the recount: nothing to do unless the files changed.
    rt.every(settings.recompute_interval_seconds, "assignment-registry-sync", sync)

    async def recompute() -> str:
        return f"{await recompute_deadlines(units, rules)} provisional deadlines recomputed"

    rt.every(settings.recompute_interval_seconds, "assignment-recompute-deadlines", recompute)
    app = create_service_app(
        rt,
        title="Minqing assignment",
        description="Routes each matter to a responsible unit and person, with a deadline; "
        "send-back, re-assignment, deadline extension and the registry of units.",
    )
    app.state.units, app.state.rules = units, rules  # what the routes depend on
    app.include_router(router)
    map_errors(app, ERRORS)
    return app
