"""Assignment's part of the contract: what it consumes."""

from __future__ import annotations

from minqing.services.assignment.handlers import HANDLERS
from minqing.shared.contract.declaration import Declaration
from minqing.shared.service.settings import Settings


def declaration(settings: Settings) -> Declaration:
    return Declaration("assignment", {"assignment": list(HANDLERS)})
