"""Reading a stream's messages (the tail after a snapshot, or every message's id) and
publishing messages into a restored stream in order; the tail file's format.

Reading uses an ephemeral pull consumer of our own without acks (in memory, removed by
the server if we die), from a given sequence, so nothing of the services' consumers is
touched. A tail file is JSON lines, one message each: its sequence, subject, headers and
body (base64).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from minqing.shared.backup.plan import StreamMessage
from minqing.shared.domain.ids import new_id

FETCH_BATCH = 1000
FETCH_SECONDS = 2.0
PUBLISH_WINDOW = 500  # publishes in flight at once
PUBLISH_SECONDS = 30.0
# Headers a republished message must not carry again: they are conditions on the stream
# as it was (expected last sequence...), not part of the message.
CONDITIONS = ("nats-expected-",)


async def read(
    js: JetStreamContext, stream: str, after: int, upto: int, *, headers_only: bool = False
) -> AsyncIterator[list[StreamMessage]]:
    """The messages of ``stream`` with sequences in (``after``, ``upto``], in batches (the
    ones the stream no longer has are skipped). ``headers_only``: bodies left out."""
    if upto <= after:
        return
    config = ConsumerConfig(
        name=f"minqing-backup-{new_id().lower()}",
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
        mem_storage=True,
        headers_only=headers_only,
    )
    created = await js.add_consumer(stream, config=config)
    assert created.name is not None
    try:
        sub = await js.pull_subscribe_bind(created.name, stream=stream)
        last = after
        while last < upto:
            try:
                fetched = await sub.fetch(
                    batch=min(FETCH_BATCH, upto - last), timeout=FETCH_SECONDS
                )
            except TimeoutError:
                break  # the rest is gone (aged out): nothing more to read
            batch = []
            for msg in fetched:
                seq = msg.metadata.sequence.stream
                if seq > upto:
                    break
                headers = dict(msg.headers or {})
                batch.append(StreamMessage(seq, msg.subject, headers, bytes(msg.data)))
                last = seq
            if batch:
                yield batch
            if not fetched or fetched[-1].metadata.sequence.stream >= upto:
                break
        await sub.unsubscribe()
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, created.name)


async def message_ids(js: JetStreamContext, stream: str) -> dict[str, int]:
    """Every message id (``Nats-Msg-Id``) the stream holds, with the sequence of its first
    copy: read headers only."""
    info = await js.stream_info(stream)
    found: dict[str, int] = {}
    after = max(info.state.first_seq, 1) - 1
    async for batch in read(js, stream, after, info.state.last_seq, headers_only=True):
        for message in batch:
            if (msg_id := message.msg_id) is not None:
                found.setdefault(msg_id, message.seq)
    return found


async def publish_in_order(
    js: JetStreamContext, stream: str, messages: Sequence[StreamMessage]
) -> list[PubAck]:
    """Publish ``messages`` into ``stream`` in this order (pipelined: one connection keeps
    the order), each with its headers; the acks, in the same order."""
    acks: list[PubAck] = []
    for start in range(0, len(messages), PUBLISH_WINDOW):
        futures = []
        for message in messages[start : start + PUBLISH_WINDOW]:
            headers = {
                k: v for k, v in message.headers.items() if not k.lower().startswith(CONDITIONS)
            }
            futures.append(
                await js.publish_async(
                    message.subject,
                    message.data,
                    stream=stream,
                    headers=headers or None,
                    wait_stall=PUBLISH_SECONDS,
                )
            )
        async with asyncio.timeout(PUBLISH_SECONDS):
            acks += [await future for future in futures]
    return acks


def to_line(message: StreamMessage) -> str:
    """One tail file line."""
    return json.dumps(
        {
            "seq": message.seq,
            "subject": message.subject,
            "headers": dict(message.headers),
            "data": base64.b64encode(message.data).decode("ascii"),
        },
        ensure_ascii=False,
    )


def from_line(line: str) -> StreamMessage:
    """A message from a tail file line."""
    fields = json.loads(line)
    return StreamMessage(
        seq=int(fields["seq"]),
        subject=str(fields["subject"]),
        headers={str(k): str(v) for k, v in (fields.get("headers") or {}).items()},
        data=base64.b64decode(fields["data"]),
    )


def write_lines(out: IO[str], messages: Iterable[StreamMessage]) -> int:
    """Write messages to a tail file; how many."""
    count = 0
    for message in messages:
        out.write(to_line(message) + "\n")
        count += 1
    return count


def read_file(path: Path) -> Iterator[StreamMessage]:
    """The messages of a tail file, in order."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield from_line(line)
