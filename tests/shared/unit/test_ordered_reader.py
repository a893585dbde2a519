"""An ordered reader hands over batches only while the server's delivery has no gap, and
tells the consumer where each batch starts."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from nats.js.api import StreamConfig

from minqing.services.assignment.store import plumbing
from minqing.shared.messaging.subscription import ConsumerMissing, PullConsumer, Subscription


@dataclass
class Message:
    subject: str
    data: bytes
    headers: dict[str, str] | None
    metadata: Any

    async def ack(self) -> None:
        raise AssertionError("an ordered reader acks nothing")

    async def nak(self, delay: float | None = None) -> None:
        raise AssertionError("an ordered reader naks nothing")

    async def term(self) -> None:
        raise AssertionError("an ordered reader terminates nothing")


def message(stream_seq: int, consumer_seq: int) -> Message:
    sequence = SimpleNamespace(stream=stream_seq, consumer=consumer_seq)
    meta = SimpleNamespace(sequence=sequence, num_delivered=1, stream="S")
    return Message("minqing.issue.reported", b"{}", None, meta)


class Consumer:
    """Stands in for the BatchConsumer: records what it was handed and acks everything."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], int | None]] = []

    async def consume(self, messages: list[Any], epoch: int, after: int | None = None) -> bool:
        self.calls.append(([m.metadata.sequence.stream for m in messages], after))
        for m in messages:
            await m.ack()  # a no-op on what the reader hands over
        return True


def reader(consumer: Consumer) -> PullConsumer:
    subscription = Subscription(
        name="projection-history",
        stream=StreamConfig(name="S"),
        subjects=("minqing.>",),
        consumer=consumer,  # type: ignore[arg-type]
        batch_size=10,
        ack_wait=30,
        ordered=True,
    )
    return PullConsumer(subscription, None, plumbing)  # type: ignore[arg-type]


async def test_batches_are_handed_over_with_the_sequence_read_before_each() -> None:
    consumer = Consumer()
    pull = reader(consumer)
    pull._read_upto = 4  # attached after committed position 4

    await pull._hand_over([message(5, 1), message(7, 2)])  # 6 was deleted from the stream
    await pull._hand_over([message(8, 3)])

    assert consumer.calls == [([5, 7], 4), ([8], 7)]


async def test_a_gap_in_what_the_server_delivered_makes_it_read_again() -> None:
    consumer = Consumer()
    pull = reader(consumer)
    await pull._hand_over([message(1, 1), message(2, 2)])

    with pytest.raises(ConsumerMissing, match="missed messages"):
        await pull._hand_over([message(3, 3), message(5, 5)])
    assert len(consumer.calls) == 1  # nothing after the gap was handed over
