"""The report consumer: department systems' CloudEvents on ``<prefix>.<source>.report``
become reports through the same use case as every channel, in the consumer's batch
transaction. Reading, outcomes and dead letters are the shared ingress channel's
(``shared.ingress.channel``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake.channels.nats import outcomes
from minqing.services.intake.channels.nats.outcomes import IngressOutcome
from minqing.services.intake.channels.nats.reader import (
    INGRESS_TYPE,
    KIND,
    STRUCTURED,
    IngressCloudEvent,
    Problem,
    Refused,
    report_command,
)
from minqing.services.intake.handlers import IdempotencyKeyReused, Policy, Reports, accept_report
from minqing.services.intake.store import SqlReports, ingress_outcomes
from minqing.shared.contract.asyncapi import Channel
from minqing.shared.contract.reference import ReferenceData
from minqing.shared.ingress.channel import (
    PROCESSING_FAILED,
    IngressChannel,
    dlq_subject,
    kind_subjects,
    outcome_subject,
)
from minqing.shared.ingress.metrics import IngressMetrics
from minqing.shared.ingress.outcomes import IngressOutcome as AnyOutcome
from minqing.shared.messaging.consumer import Delivery, Outcome
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings

__all__ = ["CONSUMER", "PROCESSING_FAILED", "IngressConsumer", "ingress_channels"]

CONSUMER_VIEW = "ingress"
CONSUMER = f"intake-{CONSUMER_VIEW}"


def ingress_subjects(prefix: str) -> tuple[str, ...]:
    """What the report consumer reads: reports of every source."""
    return kind_subjects(prefix, (KIND,))


def ingress_channels(settings: Settings) -> list[Channel]:
    """The contract of this channel, from the subjects and models the consumer uses."""
    [reports] = ingress_subjects(settings.ingress_subject_prefix)
    return [
        Channel(
            address=reports.replace("*", "{source}"),
            stream=settings.ingress_stream_name,
            schema=IngressCloudEvent,
            title=f"{CONSUMER} consumes {INGRESS_TYPE}",
            description=(
                "A department system reports a matter: CloudEvents 1.0, structured mode "
                f"({STRUCTURED}) or binary mode (ce- headers, body = data). source is "
                "/<source code> and must match the subject's {source}; the same source and "
                "external_ref, or the same id, is the same matter. The outcome follows on "
                f"{outcome_subject(settings, '{source}')}. {CONSUMER} also answers every "
                "other subject of the stream no consumer reads (unknown_kind, wrong_subject)."
            ),
            receiver=CONSUMER,
        ),
        Channel(
            address=outcome_subject(settings, "{source}"),
            stream=settings.outcomes_stream_name,
            schema=IngressOutcome,
            title="intake, followup: outcome of each ingress message",
            description=(
                "JSON: accepted with the matter's issue_id (and the event_id it made), or not "
                "accepted with errors (code, field, message). ingress_id is the CloudEvent id; "
                "for a message whose id cannot be read, its Nats-Msg-Id, else "
                "<stream>/<sequence>. Kept "
                f"{settings.outcomes_max_age_days:g} days; also at "
                "GET /api/v1/ingress/{source}/{ingress_id} of the service that consumed it "
                "(intake: reports and subjects no consumer reads; followup: progress and "
                "resolutions)."
            ),
        ),
        Channel(
            address=dlq_subject(settings, "{source}"),
            stream=settings.dlq_stream_name,
            schema=None,
            title="intake, followup: ingress messages that could not be accepted",
            description=(
                "The original bytes and headers; headers Minqing-Dead-Reason-Code, "
                "Minqing-Dead-Reason, Minqing-Original-Subject, -Stream and -Sequence, "
                "Minqing-Consumer. Listed at GET /api/v1/dead-letters of the consuming "
                "service; POST /api/v1/dead-letters/{id}/resubmit there sends one again."
            ),
        ),
    ]


class IngressConsumer(IngressChannel):
    """Reads reports and accepts them for one intake process; given the kinds the other
    ingress consumers read (``elsewhere``), it answers the rest of the stream too."""

    def __init__(
        self,
        runtime: Runtime,
        ref: ReferenceData,
        policy: Policy,
        metrics: IngressMetrics,
        elsewhere: Collection[str] | None = None,
    ) -> None:
        super().__init__(
            runtime,
            view=CONSUMER_VIEW,
            kinds=(KIND,),
            sources=ref.codes("sources"),
            metrics=metrics,
            outcomes_table=ingress_outcomes,
            elsewhere=elsewhere,
        )
        self._policy = policy

    async def apply(
        self, session: AsyncSession, deliveries: Sequence[Delivery]
    ) -> dict[str, Outcome]:
        store: Reports = SqlReports(session)
        uow = self._rt.batch_unit_of_work(session, store)
        self.forget_refusals()
        rejected: dict[str, Outcome] = {}
        answers: list[AnyOutcome] = []
        for delivery in deliveries:
            envelope = delivery.envelope
            source, ingress_id = envelope.subject, str(envelope.correlationid)
            try:
                ingress = report_command(self.message(envelope))
                accepted = await accept_report(
                    uow,
                    ingress.command,
                    self._policy,
                    idempotency_key=ingress_id,
                    request_hash=ingress.request_hash,
                    correlation_id=ingress_id,
                )
            except (Refused, IdempotencyKeyReused) as exc:
                problems = exc.problems if isinstance(exc, Refused) else (_reused(ingress_id),)
                rejected[envelope.id] = self.refuse(envelope, problems, str(exc))
                continue
            external_ref = ingress.command.external_ref
            answers.append(outcomes.accepted_outcome(ingress_id, source, accepted, external_ref))
            self.metrics.accepted(source, (delivery.epoch, delivery.position))
        await uow.flush()
        await self.answer(session, answers)
        return rejected


def _reused(ingress_id: str) -> Problem:
    return Problem(
        "ingress_id_reused",
        f"the CloudEvent id {ingress_id!r} was already accepted with a different report",
        "id",
    )
