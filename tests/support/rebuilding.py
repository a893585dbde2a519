"""Rebuilding the projection from a test: a progress sink that remembers, and one call."""

from __future__ import annotations

from collections.abc import Sequence

import nats

from minqing.services.projection.rebuild import Summary, rebuild, select_views
from minqing.shared.persistence.db import make_engine
from minqing.shared.service.settings import Settings


class Notes:
    """A progress sink that remembers what it was told."""

    def __init__(self) -> None:
        self.totals: list[int] = []
        self.done = 0
        self.notes: list[str] = []

    def total(self, events: int) -> None:
        self.totals.append(events)

    def advance(self, events: int) -> None:
        self.done += events

    def note(self, text: str) -> None:
        self.notes.append(text)


async def rebuild_now(
    settings: Settings,
    names: Sequence[str] = (),
    *,
    batch: int = 500,
    allow_new_chain: bool = False,
    notes: Notes | None = None,
) -> tuple[Summary, Notes]:
    notes = notes or Notes()
    engine = make_engine(settings.database_url, settings)
    nc = await nats.connect(settings.nats_url)
    try:
        summary = await rebuild(
            engine,
            nc.jetstream(),
            settings,
            select_views(names),
            batch=batch,
            progress=notes,
            allow_new_chain=allow_new_chain,
        )
    finally:
        await nc.close()
        await engine.dispose()
    return summary, notes
