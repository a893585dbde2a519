"""Dead letters: messages a consumer gave up on, or that wait for a newer consumer.

Kept with their raw bytes, headers, stream, epoch and sequence, so nothing is lost and a
fixed message can be re-submitted. The sink is per subscription: the service's table
today; a dead-letter stream can implement the same protocol.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.persistence.tables import Plumbing


@dataclass(frozen=True)
class DeadLetter:
    """A message a consumer gave up on (``dead``) or that waits for a newer consumer."""

    consumer: str
    status: str
    event_id: str | None
    stream: str
    epoch: int
    seq: int
    subject: str
    deliveries: int
    reason: str
    headers: dict[str, str]
    raw: bytes
    code: str | None = None  # a machine-readable reason, when the consumer has one


class DeadLetterSink(Protocol):
    """Where a consumer puts its dead letters, inside its batch transaction."""

    async def put(self, session: AsyncSession, letters: Sequence[DeadLetter]) -> None: ...


class TableDeadLetters:
    """The service's ``dead_letters`` table: raw bytes kept, one row per stream position."""

    def __init__(self, plumbing: Plumbing) -> None:
        self._insert = text(
            f"insert into {plumbing.dead_letters.fullname} (consumer, status, event_id, stream, "
            "stream_epoch, stream_seq, subject, deliveries, reason, headers, raw) values "
            "(:consumer, :status, :event_id, :stream, :epoch, :seq, :subject, :deliveries, "
            ":reason, cast(:headers as jsonb), :raw) "
            "on conflict (consumer, stream_epoch, stream_seq) do update set "
            "status = excluded.status, reason = excluded.reason, deliveries = excluded.deliveries"
        )

    async def put(self, session: AsyncSession, letters: Sequence[DeadLetter]) -> None:
        if letters:
            rows = [
                {
                    **{k: getattr(d, k) for k in ("consumer", "status", "event_id", "stream")},
                    **{k: getattr(d, k) for k in ("epoch", "seq", "deliveries", "raw")},
                    "subject": _storable(d.subject),
                    "reason": _storable(d.reason),
                    "headers": _storable_headers(d.headers),
                }
                for d in letters
            ]
            await session.execute(self._insert, rows)


def _storable(value: str) -> str:
    """Text PostgreSQL can store: NUL characters shown as ``\\0``."""
    return value.replace("\x00", "\\0")


def _storable_headers(headers: Mapping[str, str] | None) -> str:
    clean = {_storable(k): _storable(v) for k, v in (headers or {}).items()}
    return json.dumps(clean)
