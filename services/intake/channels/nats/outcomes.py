"""What became of each report sent over NATS: the shared ingress outcome with what the
report became (``shared.ingress.outcomes``), kept in ``intake.ingress_outcomes``."""

from __future__ import annotations

from minqing.services.intake.handlers import Accepted
from minqing.shared.ingress import outcomes as shared


class IngressOutcome(shared.IngressOutcome):
    """The outcome of one report: also the report it became and whether it was new."""

    report_id: str | None = None
    created: bool | None = None  # false: a repeat of an accepted message, same answer
    duplicate_of: str | None = None  # merged into a matter already on the list
    similarity: float | None = None


def accepted_outcome(
    ingress_id: str, source: str, accepted: Accepted, external_ref: str | None
) -> IngressOutcome:
    return IngressOutcome(
        ingress_id=ingress_id,
        source=source,
        accepted=True,
        issue_id=accepted.issue_id,
        report_id=accepted.report_id,
        event_id=accepted.event_id,
        created=accepted.created,
        duplicate_of=accepted.duplicate_of,
        similarity=accepted.similarity,
        external_ref=external_ref,
    )
