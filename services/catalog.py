"""The whole system's contract, assembled from each service's own declaration.

Who consumes what comes from each service's routing tables (its ``declaration``), so the
AsyncAPI document cannot drift from the code. Only the whole-system views import every
service (the ``minqing asyncapi`` command, the docs, tests): a service at start-up declares
and serves its own part.
"""

from __future__ import annotations

from collections.abc import Sequence

from minqing.services.assignment.declaration import declaration as assignment
from minqing.services.followup.declaration import declaration as followup
from minqing.services.followup.ingress import KINDS as FOLLOWUP_KINDS
from minqing.services.followup.ingress_consumer import CONSUMER as FOLLOWUP_INGRESS
from minqing.services.intake.channels.nats.consumer import CONSUMER as INTAKE_INGRESS
from minqing.services.intake.channels.nats.reader import KIND as REPORT
from minqing.services.intake.declaration import declaration as intake
from minqing.services.projection.declaration import declaration as projection
from minqing.shared.contract.asyncapi import Channel, asyncapi
from minqing.shared.contract.declaration import Declaration
from minqing.shared.contract.events import Event
from minqing.shared.service.settings import Settings

DECLARATIONS = (intake, assignment, followup, projection)


def declarations(settings: Settings) -> list[Declaration]:
    return [declare(settings) for declare in DECLARATIONS]


def consumers(settings: Settings | None = None) -> dict[str, Sequence[type[Event]]]:
    """Durable consumer name -> the event classes it consumes, for the whole system."""
    return {
        name: classes
        for each in declarations(settings or Settings())
        for name, classes in each.consumers.items()
    }


def channels(settings: Settings) -> list[Channel]:
    """The channels beside the canonical stream: department systems' ingress (reports to
    intake, progress and resolutions to followup) and outcomes, and the dead letters of
    what could not be accepted."""
    return [channel for each in declarations(settings) for channel in each.channels]


def ingress_kinds() -> dict[str, tuple[str, ...]]:
    """Ingress consumer -> the kinds of message it reads (``<prefix>.<source>.<kind>``)."""
    return {INTAKE_INGRESS: (REPORT,), FOLLOWUP_INGRESS: FOLLOWUP_KINDS}


def document(settings: Settings) -> dict[str, object]:
    """The whole system's AsyncAPI document."""
    return asyncapi(settings, consumers(settings), channels(settings))
