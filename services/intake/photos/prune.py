"""The retention rule by hand: ``minqing photos prune`` (intake also prunes on its own,
every ``MINQING_PHOTO_PRUNE_INTERVAL_SECONDS``)."""

from __future__ import annotations

from typing import cast

from sqlalchemy.ext.asyncio import AsyncEngine

from minqing.services.intake.photos.handlers import Photos, Pruned, prune_photos
from minqing.services.intake.photos.store import SqlPhotos
from minqing.services.intake.photos.wiring import retention
from minqing.services.intake.store import plumbing
from minqing.shared.domain.clock import Clock, system_clock
from minqing.shared.messaging.outbox import Outbox
from minqing.shared.persistence.db import make_sessions
from minqing.shared.persistence.uow import UowFactory, sql_units_of_work
from minqing.shared.service.settings import Settings


async def prune_on(engine: AsyncEngine, settings: Settings, clock: Clock = system_clock) -> Pruned:
    """Prune intake's photos on ``engine`` as the settings' retention rule says, at
    ``clock()``. Records no event (the rows keep their ids and SHA-256)."""
    outbox = Outbox(plumbing.outbox, settings.subject_prefix)
    units = cast(
        "UowFactory[Photos]",
        sql_units_of_work(make_sessions(engine), SqlPhotos, outbox, service="intake", clock=clock),
    )
    return await prune_photos(units, retention(settings))
