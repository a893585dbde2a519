"""Intake's composition root: reports come in from every channel and leave as events."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from services import catalog
from services.intake.api import build_router
from services.intake.handlers import HANDLERS, Policy
from services.intake.ingress_api import build_ingress_router
from services.intake.ingress_consumer import IngressConsumer
from services.intake.metrics import IngressMetrics
from services.intake.store import SqlReports, plumbing
from shared import reference
from shared.clock import Clock, system_clock
from shared.dispatch import consumed_types, event_applier
from shared.messaging import dlq_stream_config, outcomes_stream_config
from shared.runtime import build_runtime
from shared.service import create_service_app
from shared.settings import Settings
from shared.uow import SqlUnitOfWork


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()
    rt = build_runtime("intake", settings, plumbing, clock=clock)
    rt.catalog = catalog.consumers()
    rt.channels = catalog.channels(settings)
    rt.streams = [outcomes_stream_config(settings), dlq_stream_config(settings)]
    rt.accepts_without_nats = True
    ref = reference.load(settings.reference_dir)
    reference.activate(ref)
    policy = Policy(duplicate_threshold=settings.duplicate_threshold)

    def unit_of_work(session: AsyncSession) -> SqlUnitOfWork[SqlReports]:
        return rt.batch_unit_of_work(session, SqlReports(session))

    # Each matter's status, to report back to the channels (Open311, outcomes).
    rt.subscribe("status", event_applier(HANDLERS, None, unit_of_work), consumed_types(HANDLERS))
    # Department systems' reports on NATS (CloudEvents), answered on the outcomes stream.
    metrics = IngressMetrics()
    IngressConsumer(rt, ref, policy, metrics).subscribe()
    app = create_service_app(
        rt, title="Minqing intake", description="Accepts residents' matters from every channel."
    )
    app.include_router(build_router(rt.units_of_work(SqlReports), ref, policy))
    app.include_router(build_ingress_router(rt, metrics))
    return app
