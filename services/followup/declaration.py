"""Followup's part of the contract: what it consumes and the channels it owns."""

from __future__ import annotations

from minqing.services.followup.handlers import HANDLERS
from minqing.services.followup.ingress_consumer import followup_channels
from minqing.shared.contract.declaration import Declaration
from minqing.shared.service.settings import Settings


def declaration(settings: Settings) -> Declaration:
    return Declaration("followup", {"followup": list(HANDLERS)}, followup_channels(settings))
