"""Who consumes what, for the whole system, derived from each service's routing table.

The AsyncAPI "consumes" section comes from here, so it cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Sequence

from minqing.services.assignment.handlers import HANDLERS as ASSIGNMENT
from minqing.services.followup.handlers import HANDLERS as FOLLOWUP
from minqing.services.followup.ingress import KINDS as FOLLOWUP_KINDS
from minqing.services.followup.ingress_consumer import CONSUMER as FOLLOWUP_INGRESS
from minqing.services.followup.ingress_consumer import followup_channels
from minqing.services.intake.handlers import HANDLERS as INTAKE
from minqing.services.intake.ingress import KIND as REPORT
from minqing.services.intake.ingress_consumer import CONSUMER as INTAKE_INGRESS
from minqing.services.intake.ingress_consumer import ingress_channels
from minqing.services.intake.residents.handlers import REPLY_HANDLERS as INTAKE_REPLIES
from minqing.services.projection.views import VIEWS
from minqing.shared.contract.asyncapi import Channel
from minqing.shared.contract.events import EVENT_CLASSES, Event
from minqing.shared.service.settings import Settings


def consumers() -> dict[str, Sequence[type[Event]]]:
    """Durable consumer name -> the event classes it consumes."""
    found: dict[str, Sequence[type[Event]]] = {
        "intake-status": list(INTAKE),
        "intake-replies": list(INTAKE_REPLIES),
        "assignment": list(ASSIGNMENT),
        "followup": list(FOLLOWUP),
    }
    for view in VIEWS:
        found[f"projection-{view.NAME}"] = EVENT_CLASSES  # every event, known type or not
    return found


def ingress_kinds() -> dict[str, tuple[str, ...]]:
    """Ingress consumer -> the kinds of message it reads (``<prefix>.<source>.<kind>``).
    Intake's also answers every other subject of the ingress stream (``elsewhere``)."""
    return {INTAKE_INGRESS: (REPORT,), FOLLOWUP_INGRESS: FOLLOWUP_KINDS}


def elsewhere(consumer: str) -> list[str]:
    """The kinds the other ingress consumers read."""
    return [k for c, kinds in ingress_kinds().items() if c != consumer for k in kinds]


def channels(settings: Settings) -> list[Channel]:
    """The channels beside the canonical stream: department systems' ingress (reports to
    intake, progress and resolutions to followup) and outcomes, and the dead letters of
    what could not be accepted."""
    return ingress_channels(settings) + followup_channels(settings)
