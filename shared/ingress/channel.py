"""The generic part of an ingress consumer: department systems' CloudEvents on
``<prefix>.<source>.<kind>`` are read (``parse``), applied by the service in the batch
transaction (``apply``, the subclass's), and every message's outcome and every refused
message (to the dead-letter stream) leave through the outbox in that same transaction.

A message that cannot be read is refused by ``parse`` (the batch consumer dead-letters it
without an inbox entry); a readable one is claimed in the inbox under its key (source, id,
fingerprint), so a redelivery is skipped while a re-submitted or changed one is answered.

One consumer of the ingress stream (intake's) reads the whole stream, so that no message
stays there unanswered: a subject of a kind no consumer reads, or not of the shape
``<prefix>.<source>.<kind>``, is refused (``unknown_kind``, ``wrong_subject``), and the
kinds other consumers read are passed over (acknowledged, nothing done).
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.contract.envelope import Envelope
from minqing.shared.domain.ids import new_id
from minqing.shared.ingress import outcomes
from minqing.shared.ingress.cloudevents import (
    REASON_CODE_HEADER,
    REASON_HEADER,
    IngressMessage,
    Problem,
    Refused,
    ingress_type,
    outcome_id,
    read_cloudevent,
    refused,
    subject_parts,
)
from minqing.shared.ingress.metrics import IngressMetrics
from minqing.shared.messaging.consumer import Delivery, Outcome, RawMessage
from minqing.shared.messaging.dead_letters import DeadLetter
from minqing.shared.messaging.outbox import Message
from minqing.shared.messaging.streams import ingress_stream_config
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings

log = logging.getLogger(__name__)
PROCESSING_FAILED = "processing_failed"
UNKNOWN_SOURCE = "unknown"  # the outcome's source when the subject names none
# The inbox key of every message of a kind another consumer reads: claimed once, so the
# rest are acknowledged as already processed, without an inbox row each.
ELSEWHERE = "elsewhere/"


def outcome_subject(settings: Settings, source: str) -> str:
    return f"{settings.outcomes_subject_prefix}.{source}"


def dlq_subject(settings: Settings, source: str) -> str:
    return f"{settings.dlq_subject_prefix}.ingress.{source}"


def kind_subjects(prefix: str, kinds: Sequence[str]) -> tuple[str, ...]:
    """What a consumer of these kinds reads: messages of every source."""
    return tuple(f"{prefix}.*.{kind}" for kind in kinds)


class IngressChannel(ABC):
    """Reads, answers and dead-letters one consumer's ingress messages; the subclass
    applies the readable ones (``apply``) and answers them with ``answer``."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        view: str,
        kinds: Sequence[str],
        sources: Collection[str],
        metrics: IngressMetrics,
        outcomes_table: Table,
        elsewhere: Collection[str] | None = None,
    ) -> None:
        """``elsewhere``: the kinds the other ingress consumers read; given, this consumer
        reads the whole ingress stream and refuses what no consumer reads."""
        self._rt = runtime
        self._settings = runtime.settings
        self.view = view
        self.consumer = f"{runtime.name}-{view}"
        self.kinds = tuple(kinds)
        prefix = self._settings.ingress_subject_prefix
        self.subjects = (f"{prefix}.>",) if elsewhere is not None else kind_subjects(prefix, kinds)
        self._elsewhere = {
            kind: _passed_over(kind) for kind in elsewhere or () if kind not in self.kinds
        }
        self._sources = sources
        self.metrics = metrics
        runtime.metrics.extra.append(metrics.registry)  # served with the service's own
        self._outcomes = outcomes_table
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
            self.view,
            self._apply_own,
            None,
            parser=self.parse,
            stream=ingress_stream_config(self._settings),
            subjects=self.subjects,
            dead_letters=self,
            after_commit=self.metrics.commit,
        )
        self._rt.every(
            self._settings.prune_interval_seconds,
            f"{self._rt.name}-prune-outcomes",
            self.prune_outcomes,
        )

    async def prune_outcomes(self) -> str:
        """Forget outcomes older than the outcomes stream keeps them."""
        before = self._rt.clock() - timedelta(days=self._settings.outcomes_max_age_days)
        async with self._rt.sessions() as session:
            pruned = await outcomes.prune(session, self._outcomes, before)
            await session.commit()
        return f"{pruned} ingress outcomes older than the outcomes stream pruned"

    # ------------------------------------------------------------------------------ parse

    def read(self, subject: str, body: bytes, headers: dict[str, str] | None) -> IngressMessage:
        parts = subject_parts(subject, self._settings.ingress_subject_prefix)
        if parts is not None and parts[1] not in self.kinds and parts[1] not in self._elsewhere:
            kinds = ", ".join(sorted({*self.kinds, *self._elsewhere}))
            raise refused(
                "unknown_kind",
                f"no consumer reads {parts[1][:100]!r} messages: the kinds are {kinds}",
            )
        return read_cloudevent(
            subject,
            body,
            headers,
            prefix=self._settings.ingress_subject_prefix,
            kinds=self.kinds,
            max_bytes=self._settings.max_ingress_bytes,
            sources=self._sources,
        )

    def parse(self, message: RawMessage) -> Envelope:
        """The consumer's view of a readable message: its key is the inbox id, the sender's
        CloudEvent id the correlation id, the data the data. Whatever goes wrong in reading
        is a refusal: one message never stops the consumer. A message of a kind another
        consumer reads is passed over."""
        parts = subject_parts(message.subject, self._settings.ingress_subject_prefix)
        if parts is not None and parts[1] in self._elsewhere:
            return self._elsewhere[parts[1]]
        try:
            m = self.read(message.subject, bytes(message.data), message.headers)
        except Refused:
            raise
        except Exception as exc:
            log.exception("ingress message on %s could not be read", message.subject)
            raise refused(PROCESSING_FAILED, f"could not be read: {exc!r}"[:500]) from exc
        return Envelope(
            specversion="1.0",
            id=m.key,
            source=f"/{m.source}",
            type=ingress_type(m.kind),
            subject=m.source,
            time=datetime.now(UTC),
            data={m.kind: m.data},
            dataversion=1,
            correlationid=m.ingress_id,
            actor=m.source,
        )

    @staticmethod
    def message(envelope: Envelope) -> IngressMessage:
        """The readable message again, as ``parse`` made it into an envelope."""
        kind = envelope.type.removeprefix("minqing.ingress.")
        return IngressMessage(
            source=envelope.subject,
            ingress_id=str(envelope.correlationid),
            data=envelope.data.get(kind),
            fingerprint="",
            kind=kind,
        )

    # ------------------------------------------------------------------------------ apply

    async def _apply_own(
        self, session: AsyncSession, deliveries: Sequence[Delivery]
    ) -> dict[str, Outcome]:
        own = [d for d in deliveries if not d.envelope.id.startswith(ELSEWHERE)]
        return await self.apply(session, own) if own else {}

    @abstractmethod
    async def apply(
        self, session: AsyncSession, deliveries: Sequence[Delivery]
    ) -> dict[str, Outcome]:
        """Apply the batch; answer the accepted messages, return the refused ones (each
        noted with ``refuse``)."""

    def refuse(
        self, envelope: Envelope, problems: Sequence[Problem], reason: str | None = None
    ) -> Outcome:
        """A message refused while applying: its problems go with its outcome, ``reason``
        (else the problems) with its dead letter."""
        self._problems[envelope.id] = tuple(problems)
        return Outcome(reason or str(Refused(*problems)), code=problems[0].code)

    def forget_refusals(self) -> None:
        """Start a batch (again): refusals of an attempt that did not commit are forgotten."""
        self._problems.clear()

    async def answer(
        self, session: AsyncSession, answers: Sequence[outcomes.IngressOutcome]
    ) -> None:
        """Publish (outbox) and keep the outcomes, in the caller's transaction."""
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
        await outcomes.keep(session, self._outcomes, answers)

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
            source = self._source(d.subject)
            problems = self._problems.pop(d.event_id or "", None) or (
                Problem(d.code or PROCESSING_FAILED, d.reason),
            )
            answers.append(outcomes.rejected_outcome(self._ingress_id(d), source, problems))
            self.metrics.rejected(source, d.code or PROCESSING_FAILED, (d.epoch, d.seq))
        await self.answer(session, answers)

    def _source(self, subject: str) -> str:
        """The sender the subject names, as ``GET /api/v1/ingress/<source>/<id>`` takes it."""
        parts = subject_parts(subject, self._settings.ingress_subject_prefix)
        if parts is None or not _SOURCE.fullmatch(parts[0]):
            return UNKNOWN_SOURCE
        return parts[0]

    @staticmethod
    def _ingress_id(letter: DeadLetter) -> str:
        return outcome_id(letter.raw, letter.headers, letter.stream, letter.seq)

    def _to_dlq(self, letter: DeadLetter) -> Message:
        source = self._source(letter.subject)
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


_SOURCE = re.compile(r"[A-Za-z0-9_-]{1,100}")  # as the outcome's HTTP path takes it


def _passed_over(kind: str) -> Envelope:
    """What ``parse`` makes of a message another consumer reads: one key for the kind."""
    return Envelope(
        specversion="1.0",
        id=f"{ELSEWHERE}{kind}",
        source="/minqing",
        type=ingress_type(kind),
        subject=kind,
        time=datetime.now(UTC),
        data={},
        dataversion=1,
        correlationid=kind,
        actor="minqing",
    )


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
