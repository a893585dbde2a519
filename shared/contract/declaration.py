"""What one service declares of the contract: its consumers (durable consumer -> the event
classes it consumes) and the channels it owns beside the canonical stream. A service
serves its own part at ``/asyncapi.json``; the whole system's document is assembled from
every service's declaration (``services/catalog.py``, ``minqing asyncapi``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from minqing.shared.contract.asyncapi import Channel, Consumers


@dataclass(frozen=True)
class Declaration:
    service: str
    consumers: Consumers
    channels: Sequence[Channel] = ()
