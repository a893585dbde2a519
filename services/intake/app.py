"""Intake's composition root: reports come in from every channel and leave as events."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake import personal_api
from minqing.services.intake.channels.http import api as http
from minqing.services.intake.channels.lists import api as lists
from minqing.services.intake.channels.nats.consumer import CONSUMER, IngressConsumer
from minqing.services.intake.channels.open311 import api as open311
from minqing.services.intake.channels.open311.store import Open311Reports
from minqing.services.intake.declaration import declaration
from minqing.services.intake.handlers import HANDLERS, Policy
from minqing.services.intake.imports import ImportWorker, process_batch, prune_imports
from minqing.services.intake.photos import api as photos_api
from minqing.services.intake.photos import wiring as photos
from minqing.services.intake.photos.handlers import PHOTO_HANDLERS
from minqing.services.intake.photos.store import SqlReportsWithPhotos
from minqing.services.intake.residents import api as residents_api
from minqing.services.intake.residents import pages as residents_pages
from minqing.services.intake.residents import wiring as residents
from minqing.services.intake.store import (
    SqlContacts,
    SqlImportStore,
    SqlReports,
    ingress_outcomes,
    plumbing,
)
from minqing.services.intake.visits import api as visits_api
from minqing.services.intake.visits import pages as visit_pages
from minqing.shared.contract import reference
from minqing.shared.domain.clock import Clock, system_clock
from minqing.shared.ingress.api import build_ingress_router
from minqing.shared.ingress.kinds import read_elsewhere
from minqing.shared.ingress.metrics import IngressMetrics
from minqing.shared.messaging.dispatch import consumed_types, event_applier
from minqing.shared.messaging.streams import dlq_stream_config, outcomes_stream_config
from minqing.shared.persistence.uow import SqlUnitOfWork
from minqing.shared.service.runtime import Runtime, build_runtime
from minqing.shared.service.settings import Settings
from minqing.shared.web.app import create_service_app
from minqing.shared.web.errors import ErrorStatuses, map_errors


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()
    rt = build_runtime("intake", settings, plumbing, clock=clock)
    own = declaration(settings)  # its part of the contract, served at /asyncapi.json
    rt.catalog, rt.channels = dict(own.consumers), list(own.channels)
    rt.streams = [outcomes_stream_config(settings), dlq_stream_config(settings)]
    rt.accepts_without_nats = True
    ref = reference.load(settings.reference_dir)
    reference.activate(ref)
    policy = Policy(duplicate_threshold=settings.duplicate_threshold)
    _report_status(rt)
    imports = _imports(rt, policy)
    # Department systems' reports on NATS (CloudEvents), answered on the outcomes stream;
    # a message no ingress consumer reads (an unknown kind) is answered here too.
    metrics = IngressMetrics(CONSUMER)
    ingress = IngressConsumer(rt, ref, policy, metrics, elsewhere=read_elsewhere("intake"))
    ingress.subscribe()
    # Residents: supervisors, answers to every reporter (durable, through a notifier), feedback.
    supervision = residents.install(rt, ref)
    # Staff's photos: a private store; followup's steps name photos, attached as read.
    photo_units = photos.install(rt)

    app = create_service_app(
        rt,
        title="Minqing intake",
        description="Accepts residents' matters from every channel.",
        # A list, a photo with an Open311 request and a staff's photo may be larger than a
        # report.
        upload_paths=(lists.PREFIX, f"{open311.PREFIX}/requests", photos_api.PREFIX),
    )
    # What the routes depend on (minqing.services.intake.deps and each channel's own).
    app.state.reference, app.state.policy = ref, policy
    # A report over HTTP attaches its photos in its transaction.
    app.state.reports = rt.units_of_work(SqlReportsWithPhotos)
    app.state.photos = photo_units
    app.state.imports, app.state.residents = imports, supervision
    app.state.contacts = rt.units_of_work(SqlContacts)  # reporters' names and phones
    _serve(app, http.router, http.ERRORS)
    _serve(app, lists.router, lists.ERRORS)
    open311.install(app, rt.units_of_work(Open311Reports))
    app.include_router(build_ingress_router(rt, ingress, ingress_outcomes))
    _serve(app, residents_api.router, residents_api.ERRORS)
    app.include_router(residents_pages.router)  # the residents' public pages
    app.include_router(visit_pages.router)  # grid workers' visit page, offline too
    app.include_router(visits_api.router)  # visits that found nothing, counted per village
    _serve(app, personal_api.router, personal_api.ERRORS)
    _serve(app, photos_api.router, photos_api.ERRORS)
    return app


def _report_status(rt: Runtime) -> None:
    """Each matter's status, to report back to the channels (Open311, outcomes), and the
    photos its steps name."""

    def unit_of_work(session: AsyncSession) -> SqlUnitOfWork[SqlReports]:
        return rt.batch_unit_of_work(session, SqlReports(session))

    status = event_applier(HANDLERS, None, unit_of_work)
    types = consumed_types({**HANDLERS, **PHOTO_HANDLERS})  # as the declaration says
    rt.subscribe("status", photos.with_photos(rt, status), types)


def _imports(rt: Runtime, policy: Policy) -> lists.Imports:
    """Compiled lists: rows stored at upload, accepted in the background batch by batch."""
    settings = rt.settings
    units = rt.units_of_work(SqlImportStore)
    worker = ImportWorker(
        lambda: process_batch(units, policy, settings.import_batch_size),
        poll_seconds=settings.import_poll_seconds,
        retry_seconds=settings.consumer_retry_delay_seconds,
        prune=lambda: prune_imports(units, timedelta(days=settings.retention_days)),
        prune_every=settings.prune_interval_seconds,
    )
    rt.workers.append(worker.run)
    return lists.Imports(units, lists.list_reader(settings), worker.notify)


def _serve(app: FastAPI, router: APIRouter, errors: ErrorStatuses) -> None:
    """The router's routes, and its domain errors answered with their statuses."""
    app.include_router(router)
    map_errors(app, errors)
