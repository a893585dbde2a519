"""Photos in intake's composition root: the consumer that attaches the photos followup's
steps name, the retention rule's periodic pruning, and what the routes use.

A durable of its own (``intake-photos``), not handlers added to ``intake-status``: the
photos' store and the matters' status are two tables that move independently, a photo
the consumer cannot attach never holds back the status channels report, and a new event
type with photos is one entry in ``PHOTO_HANDLERS`` without touching the status consumer.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake.photos.domain import Retention
from minqing.services.intake.photos.handlers import (
    PHOTO_HANDLERS,
    Photos,
    Pruned,
    prune_photos,
)
from minqing.services.intake.photos.store import SqlPhotos
from minqing.shared.messaging.dispatch import consumed_types, event_applier
from minqing.shared.persistence.uow import SqlUnitOfWork, UowFactory
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings


def retention(settings: Settings) -> Retention:
    """The retention rule the settings give."""
    return Retention(
        kept=timedelta(days=settings.photo_retention_days),
        orphans=timedelta(hours=settings.photo_orphan_hours),
    )


def install(rt: Runtime) -> UowFactory[Photos]:
    """Subscribe ``intake-photos``, prune every ``photo_prune_interval_seconds``; return
    the units of work the routes use."""
    units: UowFactory[Photos] = rt.units_of_work(SqlPhotos)

    def unit_of_work(session: AsyncSession) -> SqlUnitOfWork[SqlPhotos]:
        return rt.batch_unit_of_work(session, SqlPhotos(session))

    rt.subscribe(
        "photos",
        event_applier(PHOTO_HANDLERS, None, unit_of_work),
        consumed_types(PHOTO_HANDLERS),
    )
    rule = retention(rt.settings)

    async def prune() -> str:
        return said(await prune_photos(units, rule))

    rt.every(rt.settings.photo_prune_interval_seconds, "intake-photos-prune", prune)
    return units


def said(pruned: Pruned) -> str:
    """What a round of pruning did, in words (the log line, the command's output)."""
    return (
        f"{pruned.total} photo(s) removed by the retention rule: {pruned.orphans} never "
        f"attached to a matter, {pruned.expired} past the retention period on a matter"
    )
