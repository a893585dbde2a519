"""Followup's ingress consumer (``followup-ingress``): departments' progress and
resolutions on NATS go through the same use cases as over HTTP, in the consumer's batch
transaction. Reading, outcomes and dead letters are the shared ingress channel's
(``shared.ingress.channel``): an unknown matter, another unit than the assigned one, a
wrong state or invalid data is a dead letter with an ``accepted: false`` outcome."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.followup.domain import NotAssignedUnit, ResolveIssue, UnknownIssue, WrongState
from minqing.services.followup.handlers import Cases, Rules, progress_in, resolve_in
from minqing.services.followup.ingress import (
    KINDS,
    ProgressCloudEvent,
    ResolutionCloudEvent,
    Step,
    read_step,
)
from minqing.services.followup.store import SqlCases, ingress_outcomes
from minqing.shared.contract.asyncapi import Channel
from minqing.shared.contract.reference import ReferenceData
from minqing.shared.ingress.channel import IngressChannel, kind_subjects, outcome_subject
from minqing.shared.ingress.cloudevents import STRUCTURED, Problem, Refused, ingress_type
from minqing.shared.ingress.kinds import PROGRESS, RESOLUTION
from minqing.shared.ingress.metrics import IngressMetrics
from minqing.shared.ingress.outcomes import IngressOutcome
from minqing.shared.messaging.consumer import Delivery, Outcome
from minqing.shared.persistence.uow import UnitOfWork
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings

CONSUMER_VIEW = "ingress"
CONSUMER = f"followup-{CONSUMER_VIEW}"


def followup_channels(settings: Settings) -> list[Channel]:
    """The contract of these channels, from the subjects and models the consumer uses."""
    subjects = kind_subjects(settings.ingress_subject_prefix, KINDS)
    schemas = {PROGRESS: ProgressCloudEvent, RESOLUTION: ResolutionCloudEvent}
    what = {
        PROGRESS: "reports progress on one milestone of the matter's plan (done or not)",
        RESOLUTION: "reports the matter solved (summary, evidence, cost, funding_source)",
    }
    return [
        Channel(
            address=subject.replace("*", "{source}"),
            stream=settings.ingress_stream_name,
            schema=schemas[kind],
            title=f"{CONSUMER} consumes {ingress_type(kind)}",
            description=(
                f"A department {what[kind]} as its own unit (the source code): CloudEvents "
                f"1.0, structured mode ({STRUCTURED}) or binary mode (ce- headers, body = "
                "data). data names the matter by issue_id or by the external_ref the source "
                "reported it with. Only the assigned unit may; an unknown matter "
                "(unknown_matter), another unit (not_assigned_unit), a wrong state "
                "(wrong_state) or invalid data is dead-lettered. The outcome follows on "
                f"{outcome_subject(settings, '{source}')}."
            ),
            receiver=CONSUMER,
        )
        for kind, subject in zip(KINDS, subjects, strict=True)
    ]


class FollowupIngress(IngressChannel):
    """Reads progress and resolutions and records them for one followup process."""

    def __init__(
        self, runtime: Runtime, ref: ReferenceData, rules: Rules, metrics: IngressMetrics
    ) -> None:
        super().__init__(
            runtime,
            view=CONSUMER_VIEW,
            kinds=KINDS,
            sources=ref.codes("sources"),
            metrics=metrics,
            outcomes_table=ingress_outcomes,
        )
        self._rules = rules

    async def apply(
        self, session: AsyncSession, deliveries: Sequence[Delivery]
    ) -> dict[str, Outcome]:
        uow: UnitOfWork[Cases] = self._rt.batch_unit_of_work(
            session, SqlCases(session, self._rt.clock())
        )
        self.forget_refusals()
        rejected: dict[str, Outcome] = {}
        answers: list[IngressOutcome] = []
        for delivery in deliveries:
            envelope = delivery.envelope
            source, ingress_id = envelope.subject, str(envelope.correlationid)
            try:
                step = read_step(self.message(envelope))
                issue_id = await _matter(uow, source, step)
                if isinstance(step.command, ResolveIssue):
                    recorded = await resolve_in(uow, self._rules, issue_id, step.command)
                else:
                    recorded = await progress_in(uow, self._rules, issue_id, step.command)
            except Refused as exc:
                rejected[envelope.id] = self.refuse(envelope, exc.problems, str(exc))
                continue
            except (UnknownIssue, WrongState) as exc:
                field = _field(step) if isinstance(exc, UnknownIssue) else None
                problem = Problem(_code(exc), str(exc), field)
                rejected[envelope.id] = self.refuse(envelope, [problem])
                continue
            answers.append(
                IngressOutcome(
                    ingress_id=ingress_id,
                    source=source,
                    accepted=True,
                    issue_id=issue_id,
                    event_id=recorded.event_id,
                    external_ref=step.external_ref,
                )
            )
            self.metrics.accepted(source, (delivery.epoch, delivery.position))
        await uow.flush()
        await self.answer(session, answers)
        return rejected


async def _matter(uow: UnitOfWork[Cases], source: str, step: Step) -> str:
    if step.issue_id is not None:
        return step.issue_id
    assert step.external_ref is not None  # read_step requires one of them
    found = await uow.store.by_external_ref(source, step.external_ref)
    if found is None:
        raise UnknownIssue(f"{source} reported no matter with external_ref {step.external_ref!r}")
    return found


def _code(exc: Exception) -> str:
    if isinstance(exc, UnknownIssue):
        return "unknown_matter"
    if isinstance(exc, NotAssignedUnit):
        return "not_assigned_unit"
    return "wrong_state"


def _field(step: Step) -> str:
    return "data.issue_id" if step.issue_id is not None else "data.external_ref"
