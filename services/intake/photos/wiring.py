"""Photos in intake's composition root: attaching the photos followup's steps name, the
retention rule's periodic pruning, and what the routes use.

The photos of a resolution, a look-back or a re-visit are attached by intake's status
consumer (``intake-status``), in the batch's transaction, after the status handlers: a
durable of their own would fetch, acknowledge and claim every such event a second time
(measured in the closed loop: a consumer costs a NATS fetch and ack and a transaction per
batch, and almost no step names a photo). Only the events that name photos are decoded
for them; a photo that cannot be attached is logged and left, never a failure of the
batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from minqing.shared.messaging.consumer import ApplyBatch, Delivery, Outcome
from minqing.shared.messaging.dispatch import event_applier
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
    """Prune every ``photo_prune_interval_seconds``; return the units of work the routes
    use (the photos of steps are attached by ``with_photos``)."""
    units: UowFactory[Photos] = rt.units_of_work(SqlPhotos)
    rule = retention(rt.settings)

    async def prune() -> str:
        return said(await prune_photos(units, rule))

    rt.every(rt.settings.photo_prune_interval_seconds, "intake-photos-prune", prune)
    return units


PHOTO_TYPES = frozenset(cls.TYPE for cls in PHOTO_HANDLERS)


def names_photos(delivery: Delivery) -> bool:
    """Whether a step's event names photos (read from its data, before any decoding)."""
    return delivery.envelope.short_type in PHOTO_TYPES and bool(
        delivery.envelope.data.get("photos")
    )


def with_photos(rt: Runtime, apply_status: ApplyBatch) -> ApplyBatch:
    """The status consumer's batch, then the photos its steps name, in one transaction."""

    def unit_of_work(session: AsyncSession) -> SqlUnitOfWork[SqlPhotos]:
        return rt.batch_unit_of_work(session, SqlPhotos(session))

    attach = event_applier(PHOTO_HANDLERS, None, unit_of_work)

    async def apply(session: AsyncSession, deliveries: Sequence[Delivery]) -> Mapping[str, Outcome]:
        outcomes = dict(await apply_status(session, deliveries))
        named = [d for d in deliveries if d.envelope.id not in outcomes and names_photos(d)]
        if named:
            outcomes.update(await attach(session, named))
        return outcomes

    return apply


def said(pruned: Pruned) -> str:
    """What a round of pruning did, in words (the log line, the command's output)."""
    return (
        f"{pruned.total} photo(s) removed by the retention rule: {pruned.orphans} never "
        f"attached to a matter, {pruned.expired} past the retention period on a matter"
    )
