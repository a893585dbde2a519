"""The projection's part of the contract: each read model consumes every event."""

from __future__ import annotations

from minqing.services.projection.views import VIEWS
from minqing.shared.contract.declaration import Declaration
from minqing.shared.contract.events import EVENT_CLASSES
from minqing.shared.service.settings import Settings


def declaration(settings: Settings) -> Declaration:
    # every event, known type or not
    return Declaration("projection", {f"projection-{v.NAME}": EVENT_CLASSES for v in VIEWS})
