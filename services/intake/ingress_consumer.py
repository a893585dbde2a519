"""The ingress consumer: department systems' CloudEvents become reports through the same use
case as every channel, in the consumer's batch transaction; every message's outcome, and
every refused message (to the dead-letter stream), leave through the outbox in that same
transaction.

A message that cannot be read is refused by ``parse`` (the batch consumer dead-letters it
without an inbox entry); a readable one is claimed in the inbox under its key (source, id,
fingerprint), so a redelivery is skipped while a re-submitted or changed one is answered.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import outcomes
from services.intake.handlers import IdempotencyKeyReused, Policy, Reports, accept_report
from services.intake.ingress import (
    INGRESS_TYPE,
    REASON_CODE_HEADER,
    REASON_HEADER,
    STRUCTURED,
    IngressCloudEvent,
    IngressMessage,
    Problem,
    Refused,
    read_ingress,
    refused,
    report_command,
    source_token,
)
from services.intake.metrics import IngressMetrics
from services.intake.outcomes import IngressOutcome
from services.intake.store import SqlReports
from shared.consumer import Delivery, Outcome, RawMessage
from shared.contract import Channel
from shared.dead_letters import DeadLetter
from shared.envelope import Envelope
from shared.ids import new_id
from shared.messaging import ingress_stream_config
from shared.outbox import Message
from shared.reference import ReferenceData
from shared.runtime import Runtime
from shared.settings import Settings

log = logging.getLogger(__name__)
CONSUMER_VIEW = "ingress"
CONSUMER = f"intake-{CONSUMER_VIEW}"
PROCESSING_FAILED = "processing_failed"


def ingress_subjects(prefix: str) -> tuple[str, ...]:
    """What the ingress consumer reads: reports of every source."""
    return (f"{prefix}.*.report",)


def outcome_subject(settings: Settings, source: str) -> str:
    return f"{settings.outcomes_subject_prefix}.{source}"


def dlq_subject(settings: Settings, source: str) -> str:
    return f"{settings.dlq_subject_prefix}.ingress.{source}"


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
                f"{outcome_subject(settings, '{source}')}."
            ),
            receiver=CONSUMER,
        ),
        Channel(
            address=outcome_subject(settings, "{source}"),
            stream=settings.outcomes_stream_name,
            schema=IngressOutcome,
            title="intake: outcome of each ingress message",
            description=(
                "JSON: accepted with the matter's issue_id, or not accepted with errors "
                f"(code, field, message). Kept {settings.outcomes_max_age_days:g} days; also "
                "at GET /api/v1/ingress/{source}/{ingress_id}."
            ),
        ),
        Channel(
            address=dlq_subject(settings, "{source}"),
            stream=settings.dlq_stream_name,
            schema=None,
            title="intake: ingress messages that could not be accepted",
            description=(
                "The original bytes and headers; headers Minqing-Dead-Reason-Code, "
                "Minqing-Dead-Reason, Minqing-Original-Subject, -Stream and -Sequence. Listed "
                "at GET /api/v1/dead-letters; POST /api/v1/dead-letters/{id}/resubmit sends "
                "one again."
            ),
        ),
    ]


class IngressConsumer:
    """Parses, applies and dead-letters ingress messages for one intake process."""

    def __init__(
        self, runtime: Runtime, ref: ReferenceData, policy: Policy, metrics: IngressMetrics
    ) -> None:
        self._rt = runtime
        self._settings = runtime.settings
        self._ref = ref
        self._policy = policy
        self.metrics = metrics
        # Rejections found while applying, with every problem, for the dead-letter sink.
        self._problems: dict[str, tuple[Problem, ...]] = {}
        self._insert_letter = text(
            f"insert into {runtime.plumbing.dead_letters.fullname} (consumer, status, event_id, "
            "stream, stream_epoch, stream_seq, subject, deliveries, reason, reason_code, "
            "headers, raw) values (:consumer, :status, :event_id, :stream, :epoch, :seq, "
            ":subject, :deliveries, :reason, :code, cast(:headers as jsonb), :raw) "
            "on conflict (consumer, stream_epoch, stream_seq) do update set "
            "status = excluded.status, reason = excluded.reason, "
            "reason_code = excluded.reason_code, deliveries = excluded.deliveries"
        )

    def subscribe(self) -> None:
        self._rt.subscribe(
            CONSUMER_VIEW,
            self.apply,
            None,
            parser=self.parse,
            stream=ingress_stream_config(self._settings),
            subjects=ingress_subjects(self._settings.ingress_subject_prefix),
            dead_letters=self,
            after_commit=self.metrics.commit,
        )

    # ------------------------------------------------------------------------------ parse

    def read(self, message: RawMessage) -> IngressMessage:
        return read_ingress(
            message.subject,
            bytes(message.data),
            message.headers,
            prefix=self._settings.ingress_subject_prefix,
            max_bytes=self._settings.max_ingress_bytes,
            sources=self._ref.codes("sources"),
        )

    def parse(self, message: RawMessage) -> Envelope:
        """The consumer's view of a readable message: its key is the inbox id, the sender's
        CloudEvent id the correlation id, the report the data. Whatever goes wrong in
        reading is a refusal: one message never stops the consumer."""
        try:
            return self._envelope(self.read(message))
        except Refused:
            raise
        except Exception as exc:
            log.exception("ingress message on %s could not be read", message.subject)
            raise refused(PROCESSING_FAILED, f"could not be read: {exc!r}"[:500]) from exc

    @staticmethod
    def _envelope(m: IngressMessage) -> Envelope:
        return Envelope(
            specversion="1.0",
            id=m.key,
            source=f"/{m.source}",
            type=INGRESS_TYPE,
            subject=m.source,
            time=datetime.now(UTC),
            data={"report": m.data},
            dataversion=1,
            correlationid=m.ingress_id,
            actor=m.source,
        )

    # ------------------------------------------------------------------------------ apply

    async def apply(
        self, session: AsyncSession, deliveries: Sequence[Delivery]
    ) -> dict[str, Outcome]:
        store: Reports = SqlReports(session)
        uow = self._rt.batch_unit_of_work(session, store)
        self._problems.clear()  # left from an attempt that did not commit
        rejected: dict[str, Outcome] = {}
        answers: list[outcomes.IngressOutcome] = []
        for delivery in deliveries:
            envelope = delivery.envelope
            source, ingress_id = envelope.subject, str(envelope.correlationid)
            try:
                ingress = report_command(_message(envelope))
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
                self._problems[envelope.id] = problems
                rejected[envelope.id] = Outcome(str(exc), code=problems[0].code)
                continue
            external_ref = ingress.command.external_ref
            answers.append(outcomes.accepted_outcome(ingress_id, source, accepted, external_ref))
            self.metrics.accepted(source, (delivery.epoch, delivery.position))
        await uow.flush()
        await self._answer(session, answers)
        return rejected

    async def _answer(self, session: AsyncSession, answers: list[outcomes.IngressOutcome]) -> None:
        messages = [
            Message(
                message_id=new_id(),
                stream=self._settings.outcomes_stream_name,
                subject=outcome_subject(self._settings, a.source),
                body=a.to_json(),
                headers={"content-type": "application/json"},
            )
            for a in answers
        ]
        await self._rt.outbox.send(session, messages)
        await outcomes.keep(session, answers)

    # ------------------------------------------------------- the dead-letter sink (protocol)

    async def put(self, session: AsyncSession, letters: Sequence[DeadLetter]) -> None:
        """Keep each letter (table), and for a dead one publish it to the dead-letter stream
        and its ``accepted: false`` outcome, all in the caller's transaction."""
        if not letters:
            return
        await session.execute(self._insert_letter, [_letter_row(d) for d in letters])
        dead = [d for d in letters if d.status == "dead"]
        await self._rt.outbox.send(session, [self._to_dlq(d) for d in dead])
        answers = []
        for d in dead:
            source = source_token(d.subject, self._settings.ingress_subject_prefix) or "unknown"
            problems = self._problems.pop(d.event_id or "", None) or (
                Problem(d.code or PROCESSING_FAILED, d.reason),
            )
            answers.append(outcomes.rejected_outcome(self._ingress_id(d), source, problems))
            self.metrics.rejected(source, d.code or PROCESSING_FAILED, (d.epoch, d.seq))
        await self._answer(session, answers)

    def _ingress_id(self, letter: DeadLetter) -> str | None:
        try:
            message = read_ingress(
                letter.subject,
                letter.raw,
                letter.headers,
                prefix=self._settings.ingress_subject_prefix,
                max_bytes=self._settings.max_ingress_bytes,
                sources=self._ref.codes("sources"),
            )
        except Exception:
            return _id_as_far_as_readable(letter)
        return message.ingress_id

    def _to_dlq(self, letter: DeadLetter) -> Message:
        source = source_token(letter.subject, self._settings.ingress_subject_prefix) or "unknown"
        headers = {
            (f"Minqing-Original-{k}" if k.lower().startswith("nats-") else k): v
            for k, v in letter.headers.items()
        }
        headers.update(
            {
                REASON_CODE_HEADER: letter.code or PROCESSING_FAILED,
                REASON_HEADER: _header_value(letter.reason),
                "Minqing-Original-Subject": letter.subject,
                "Minqing-Original-Stream": letter.stream,
                "Minqing-Original-Sequence": str(letter.seq),
                "Minqing-Consumer": letter.consumer,
            }
        )
        return Message(
            message_id=f"dead/{letter.consumer}/{letter.stream}/{letter.epoch}/{letter.seq}",
            stream=self._settings.dlq_stream_name,
            subject=dlq_subject(self._settings, source),
            body=letter.raw,
            headers=headers,
        )


def _message(envelope: Envelope) -> IngressMessage:
    return IngressMessage(
        source=envelope.subject,
        ingress_id=str(envelope.correlationid),
        data=envelope.data.get("report"),
        fingerprint="",
    )


def _reused(ingress_id: str) -> Problem:
    return Problem(
        "ingress_id_reused",
        f"the CloudEvent id {ingress_id!r} was already accepted with a different report",
        "id",
    )


_ID = re.compile(rb'"id"\s*:\s*"([!-~](?:[ -~]{0,198}[!-~])?)"')


def _id_as_far_as_readable(letter: DeadLetter) -> str | None:
    """The CloudEvent id of a message refused before it was fully read, if it has one."""
    for key, value in letter.headers.items():
        if key.lower() == "ce-id":
            return value[:200] or None
    found = _ID.search(letter.raw[:65536])
    return found.group(1).decode() if found else None


_UNSAFE = re.compile(r"[^ -~]")


def _header_value(value: str) -> str:
    """A NATS header value: printable ASCII on one line, at most 1000 characters."""
    return _UNSAFE.sub("?", value)[:1000]


def _storable(value: str) -> str:
    return value.replace("\x00", "\\0")


def _letter_row(d: DeadLetter) -> dict[str, object]:
    return {
        "consumer": d.consumer,
        "status": d.status,
        "event_id": d.event_id,
        "stream": d.stream,
        "epoch": d.epoch,
        "seq": d.seq,
        "subject": _storable(d.subject),
        "deliveries": d.deliveries,
        "reason": _storable(d.reason),
        "code": d.code or (PROCESSING_FAILED if d.status == "dead" else None),
        "headers": json.dumps({_storable(k): _storable(v) for k, v in d.headers.items()}),
        "raw": d.raw,
    }
