"""Intake's part of the contract: what it consumes and the channels it owns."""

from __future__ import annotations

from minqing.services.intake.channels.nats.consumer import ingress_channels
from minqing.services.intake.handlers import HANDLERS
from minqing.services.intake.photos.handlers import PHOTO_HANDLERS
from minqing.services.intake.residents.handlers import REPLY_HANDLERS
from minqing.shared.contract.declaration import Declaration
from minqing.shared.service.settings import Settings


def declaration(settings: Settings) -> Declaration:
    return Declaration(
        "intake",
        {
            # the status consumer attaches the photos steps name (photos/wiring.py)
            "intake-status": list({**HANDLERS, **PHOTO_HANDLERS}),
            "intake-replies": list(REPLY_HANDLERS),
        },
        ingress_channels(settings),
    )
