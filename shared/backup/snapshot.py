"""JetStream's own stream snapshot and restore, spoken over plain NATS requests (nats-py
does not wrap them), as the ``nats`` CLI does.

Snapshot: a request to ``$JS.API.STREAM.SNAPSHOT.<stream>`` names a deliver subject we
already listen on; the server answers with the stream's config and state, then sends the
snapshot (an s2-compressed tar of the stream's files and, unless left out, its durable
consumers with their acknowledgement state) in chunks. Each full chunk carries a reply
subject: answering it is the flow control (the server keeps a window of chunks in flight
and gives up after a few seconds without an answer). The end is a message without data,
whose status header says how it went (204 or none: done; 408 or 500: failed).

Restore: a request to ``$JS.API.STREAM.RESTORE.<stream>`` with the config and state
names a subject to send the chunks to; each chunk is a request whose empty answer
acknowledges it (a non-empty answer is an error), and an empty request ends the transfer;
its answer is the restored stream's info. The stream must not exist. The server keeps
the stream's creation time from the snapshot, so the services see the same stream
incarnation (epoch) as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from nats.aio.client import Client

SNAPSHOT_API = "$JS.API.STREAM.SNAPSHOT.{}"
RESTORE_API = "$JS.API.STREAM.RESTORE.{}"
CHUNK_BYTES = 128 * 1024  # the server's default; under the 1 MiB max_payload
API_SECONDS = 10.0  # an API request's answer
CHUNK_SECONDS = 30.0  # the next chunk, or a chunk's acknowledgement
FINISH_SECONDS = 3600.0  # the server unpacks and loads a restored stream before answering
DONE_STATUSES = (None, "204")


class SnapshotError(RuntimeError):
    """JetStream refused or broke off a snapshot or a restore."""


@dataclass(frozen=True)
class Snapshot:
    """What a snapshot was: the stream's config and state as the server reported them
    (its own JSON, kept whole for the restore request), its size and checksum."""

    config: dict[str, Any]
    state: dict[str, Any]
    size: int
    sha256: str


def api_answer(data: bytes, what: str) -> dict[str, Any]:
    """A JetStream API answer as JSON; ``SnapshotError`` naming ``what`` if it is an error."""
    try:
        answer = json.loads(data)
    except ValueError:
        raise SnapshotError(f"{what}: not a JetStream answer: {data[:200]!r}") from None
    if not isinstance(answer, dict):
        raise SnapshotError(f"{what}: not a JetStream answer: {data[:200]!r}")
    if error := answer.get("error"):
        code = error.get("err_code") or error.get("code")
        raise SnapshotError(f"{what}: {error.get('description', error)} (error {code})")
    return answer


def end_status(headers: Mapping[str, str] | None) -> str | None:
    """Why a snapshot ended, from its last message's headers: None if it is complete."""
    status = (headers or {}).get("Status")
    if status in DONE_STATUSES:
        return None
    description = (headers or {}).get("Description", "")
    return f"{status} {description}".strip()


async def snapshot_stream(
    nc: Client,
    stream: str,
    out: BinaryIO,
    *,
    consumers: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
) -> Snapshot:
    """Write a snapshot of ``stream`` (with its durable consumers unless told not to) to
    ``out``; returns the config and state the server reported, with size and checksum."""
    inbox = nc.new_inbox()
    # Listen before asking: the server sends the first chunks right after its answer.
    sub = await nc.subscribe(inbox, pending_bytes_limit=-1, pending_msgs_limit=-1)
    try:
        request = {"deliver_subject": inbox, "no_consumers": not consumers}
        request["chunk_size"] = chunk_bytes
        reply = await nc.request(
            SNAPSHOT_API.format(stream), json.dumps(request).encode(), timeout=API_SECONDS
        )
        answer = api_answer(reply.data, f"snapshot of {stream}")
        digest, size = hashlib.sha256(), 0
        while True:
            msg = await sub.next_msg(timeout=CHUNK_SECONDS)
            if not msg.data:
                if (problem := end_status(msg.headers)) is not None:
                    raise SnapshotError(f"snapshot of {stream} broke off: {problem}")
                break
            out.write(msg.data)
            digest.update(msg.data)
            size += len(msg.data)
            if msg.reply:  # the flow control: the server sends more as chunks are acked
                await nc.publish(msg.reply, b"")
    finally:
        await sub.unsubscribe()
    return Snapshot(dict(answer["config"]), dict(answer["state"]), size, digest.hexdigest())


async def restore_stream(
    nc: Client,
    config: Mapping[str, Any],
    state: Mapping[str, Any],
    source: BinaryIO,
    *,
    chunk_bytes: int = CHUNK_BYTES,
) -> dict[str, Any]:
    """Restore a stream (which must not exist) from a snapshot read from ``source``, as
    ``config`` says; returns the restored stream's info as the server reported it."""
    name = str(config["name"])
    what = f"restore of {name}"
    request = json.dumps({"config": dict(config), "state": dict(state)}).encode()
    reply = await nc.request(RESTORE_API.format(name), request, timeout=API_SECONDS)
    deliver = api_answer(reply.data, what)["deliver_subject"]
    while chunk := source.read(chunk_bytes):
        ack = await nc.request(deliver, chunk, timeout=CHUNK_SECONDS)
        if ack.data:
            api_answer(ack.data, what)
            raise SnapshotError(f"{what}: unexpected answer to a chunk: {ack.data[:200]!r}")
    done = await nc.request(deliver, b"", timeout=FINISH_SECONDS)
    return api_answer(done.data, what)
