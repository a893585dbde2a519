"""Followup's composition root: tracks assignments, takes resolutions and look-backs."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI

from minqing.services.followup import escalation, linestaff, lookback, plans
from minqing.services.followup.api import ERRORS, funds_router, router
from minqing.services.followup.backfill import missing_cases
from minqing.services.followup.declaration import declaration
from minqing.services.followup.handlers import HANDLERS, Rules, check_deadlines, recompute_lookbacks
from minqing.services.followup.ingress_consumer import CONSUMER, FollowupIngress
from minqing.services.followup.linestaff_api import router as line_staff_router
from minqing.services.followup.registry import StaffFiles, sync_line_staff
from minqing.services.followup.store import SqlCases, SqlLineStaff, ingress_outcomes, plumbing
from minqing.shared.contract import reference
from minqing.shared.domain.calendar import WorkingCalendar, configured
from minqing.shared.domain.clock import Clock, local_date, system_clock
from minqing.shared.ingress.api import build_ingress_router
from minqing.shared.ingress.metrics import IngressMetrics
from minqing.shared.messaging.dispatch import consumed_types, event_applier
from minqing.shared.messaging.streams import dlq_stream_config, outcomes_stream_config
from minqing.shared.service.runtime import build_runtime
from minqing.shared.service.settings import Settings
from minqing.shared.web.app import create_service_app
from minqing.shared.web.errors import map_errors

log = logging.getLogger("minqing.followup")
UNFILLED = (
    "%d cases lack the title, village or resolution summary a look-back shows (stored "
    "before migration followup_0007): run `minqing followup backfill-cases`"
)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    calendar: WorkingCalendar | None = None,
) -> FastAPI:
    settings = settings or Settings()
    rt = build_runtime("followup", settings, plumbing, clock=clock)
    rt.streams = [outcomes_stream_config(settings), dlq_stream_config(settings)]
    own = declaration(settings)  # its part of the contract, served at /asyncapi.json
    rt.catalog, rt.channels = dict(own.consumers), list(own.channels)
    reference.activate(reference.load(settings.reference_dir))
    calendar = calendar or configured(settings.calendar, settings.reference_dir)
    rules = load_rules(settings.reference_dir, calendar, settings.timezone)
    units = rt.units_of_work(lambda session: SqlCases(session, clock()))
    staff_units = rt.units_of_work(lambda session: SqlLineStaff(session, clock()))
    staff_files = load_line_staff(settings.reference_dir)

    async def sync_staff() -> str:
        return f"{await sync_line_staff(staff_units, staff_files)} line staff changed"

    # First right after start-up (a change in the reference file becomes events), then again
    # with the recount: nothing to do unless the file changed.
    rt.every(settings.recompute_interval_seconds, "followup-line-staff-sync", sync_staff)
    rt.subscribe(
        None,
        event_applier(
            HANDLERS,
            rules,
            lambda session: rt.batch_unit_of_work(session, SqlCases(session, clock())),
        ),
        consumed_types(HANDLERS),
    )

    async def recompute() -> str:
        return f"{await recompute_lookbacks(units, rules)} provisional look-back dates recomputed"

    rt.every(settings.recompute_interval_seconds, "followup-recompute-lookbacks", recompute)

    async def deadlines() -> str:
        today = local_date(clock(), settings.timezone)
        return f"{await check_deadlines(units, rules, today)} overdue and escalation events"

    rt.every(settings.deadline_check_seconds, "followup-deadlines", deadlines)

    async def warn_unfilled() -> None:
        # Cases stored before followup_0007 lack what a look-back shows: say so, once.
        with contextlib.suppress(Exception):  # a database outage is reported elsewhere
            async with rt.sessions() as session:
                count = await missing_cases(await session.connection())
            if count:
                log.warning(UNFILLED, count)

    rt.workers.append(warn_unfilled)
    # Departments' progress and resolutions on NATS (CloudEvents), answered on the outcomes
    # stream.
    ingress = FollowupIngress(rt, reference.active(), rules, IngressMetrics(CONSUMER))
    ingress.subscribe()
    app = create_service_app(
        rt,
        title="Minqing followup",
        description="Cancellation by the assigned unit and the look-back visit that verifies it.",
    )
    app.state.units, app.state.rules = units, rules  # what the routes depend on
    app.state.reads = rt.read_units_of_work(lambda session: SqlCases(session, clock()))
    app.state.staff_units, app.state.staff_files = staff_units, staff_files
    app.include_router(router)
    app.include_router(line_staff_router)
    app.include_router(funds_router)
    map_errors(app, ERRORS)
    app.include_router(build_ingress_router(rt, ingress, ingress_outcomes))
    return app


def load_rules(reference_dir: Path, calendar: WorkingCalendar, timezone: str) -> Rules:
    """Followup's rules from the reference data directory, checked (the reference data
    itself must be active)."""
    data = reference.active()
    names = {code: unit.name for code, unit in data.units.items()}
    return Rules(
        calendar=calendar,
        timezone=timezone,
        ladder=escalation.load(reference_dir),
        plans=plans.load(reference_dir),
        reviewers=lookback.load(reference_dir, data.all_units()),
        unit_names=names,
        all_units=tuple(data.all_units()),
    )


def load_line_staff(reference_dir: Path) -> StaffFiles:
    """The registry of line staff as the reference file gives it, checked (the reference
    data itself must be active)."""
    data = reference.active()
    return StaffFiles(
        files=linestaff.load(reference_dir, data.all_units(), list(data.villages)),
        unit_names={code: entry.name for code, entry in data.registry().items()},
    )
