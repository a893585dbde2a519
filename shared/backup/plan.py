"""What a restore puts into the restored streams after their snapshots, and how it marks
each outbox row: pure decisions, on what the backup and the restored database hold.

A backup snapshots the streams first (instant T1, last sequence L), then dumps PostgreSQL
(T2), then reads each stream's *tail*, the messages stored after its snapshot (up to T3).
The restored stream is the snapshot plus the tail messages the restored database knows
of, in their original order; any event the database records as sent that the stream still
lacks is published again, at its place in that order. Why, and what it guarantees, is in
``docs/operator/backup-restore.md``; in short:

- every message stored before the dump began (sequence <= ``before_database``) is kept, so
  the restored stream is the original message for message, sequence for sequence, up to
  the instant of the database snapshot (anything the database refers to lies there);
- after that, a message is kept only if the database knows it (its ``Nats-Msg-Id`` is an
  outbox row's event id): one it does not know was produced after the dump's snapshot, by
  work the restored database never saw, and keeping it would leave a service's stream
  and state disagreeing. A stream others write to (department systems' ingress) keeps
  every tail message but our own re-submissions the database does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

MSG_ID = "Nats-Msg-Id"


@dataclass(frozen=True)
class StreamMessage:
    """One stored message as read from a stream (or a backup's tail file)."""

    seq: int
    subject: str
    headers: Mapping[str, str]
    data: bytes

    @property
    def msg_id(self) -> str | None:
        return self.headers.get(MSG_ID) or None


@dataclass(frozen=True)
class OutboxRow:
    """What a restore needs of an outbox row: where it goes and whether it was sent."""

    schema: str
    row_id: int
    event_id: str
    stream: str  # the stream it is published to (the canonical stream's name for events)
    sent: bool
    stream_seq: int | None  # where the stream acknowledged it, once sent


def keeps(
    message: StreamMessage,
    known: AbstractSet[str],
    before_database: int,
    *,
    external: bool = False,
    own_marker: str | None = None,
) -> bool:
    """Whether a tail message goes into the restored stream (see the module's docstring).
    ``external``: others than our outboxes write to this stream; ``own_marker``: a header
    that marks the messages our own outbox wrote to it."""
    if message.seq <= before_database:
        return True
    if message.msg_id is not None and message.msg_id in known:
        return True
    if not external:
        return False
    return own_marker is None or own_marker not in message.headers


@dataclass(frozen=True)
class Republish:
    """One message to publish into a restored stream: a tail message, or the event of an
    outbox row the stream lacks; ``original_seq`` is where it stood in the old stream."""

    original_seq: int | None
    message: StreamMessage | None = None
    row: OutboxRow | None = None


def republish_order(
    kept: Sequence[StreamMessage], rows: Iterable[OutboxRow], present: Mapping[str, int]
) -> list[Republish]:
    """What to publish after a snapshot, in the original stream's order: the kept tail
    messages it lacks, and the sent rows whose events neither it nor the tail has (ordered
    by the sequence they were acknowledged at: the old stream's order, which is causal, so a
    reaction never comes before its cause; rows without one come last, in row order)."""
    tail_ids = {m.msg_id for m in kept if m.msg_id is not None}
    items = [
        Republish(m.seq, message=m) for m in kept if m.msg_id is None or m.msg_id not in present
    ]
    items += [
        Republish(r.stream_seq, row=r)
        for r in rows
        if r.sent and r.event_id not in present and r.event_id not in tail_ids
    ]

    def order(item: Republish) -> tuple[int, int, int]:
        row_id = item.row.row_id if item.row is not None else 0
        if item.original_seq is None:
            return (1, 0, row_id)
        return (0, item.original_seq, row_id)

    return sorted(items, key=order)


@dataclass
class Marks:
    """How outbox rows are marked after a restore."""

    sent: list[tuple[OutboxRow, int]] = field(default_factory=list)  # (row, its sequence)
    unsent: list[OutboxRow] = field(default_factory=list)  # the relay publishes them again


def marks(rows: Iterable[OutboxRow], present: Mapping[str, Mapping[str, int]]) -> Marks:
    """Each row whose event the restored stream holds is marked sent at the sequence it
    holds it at (an unsent row whose event is there already would otherwise be published
    twice); a row marked sent whose event the stream lacks is marked unsent."""
    found = Marks()
    for row in rows:
        seq = present.get(row.stream, {}).get(row.event_id)
        if seq is not None:
            if not row.sent or row.stream_seq != seq:
                found.sent.append((row, seq))
        elif row.sent:
            found.unsent.append(row)
    return found


def same_numbering(
    rows: Iterable[OutboxRow],
    present: Mapping[str, int],
    landed: Iterable[tuple[int | None, int]],
    before_database: int,
) -> bool:
    """Whether the restored stream numbers its messages as the old one did, as far as the
    database can tell: every sent row's event stands at the sequence it was acknowledged
    at, and every republished message stored before the dump began (``landed``: its
    original and its new sequence) landed where it stood. Then the restored stream is the
    same incarnation to the services (their positions, inboxes and audit trail refer to
    the same sequences), and its epoch carries over."""
    rows_agree = all(
        present.get(r.event_id) == r.stream_seq for r in rows if r.sent and r.stream_seq
    )
    tail_agrees = all(
        new == old for old, new in landed if old is not None and old <= before_database
    )
    return rows_agree and tail_agrees
