"""Canonical events for the backlog, built with the event classes and ``envelope.wrap``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nats.aio.client import Client

from bench.stack import Failed, subject
from minqing.shared.contract.envelope import Envelope, wrap
from minqing.shared.contract.events import (
    Event,
    IssueAssigned,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueReported,
    IssueResolved,
)
from minqing.shared.domain.ids import new_id

CONTENT_TYPE = "application/cloudevents+json"
# Reference codes are part of the contract (README "Reference data").
ROUTES = {
    "street_lights": "town_construction",
    "water": "water_station",
    "sanitation": "environment_office",
    "other": None,  # the reporting village's own branch
}
VILLAGES = ("shihu", "sanqi", "qizhuang", "xuma", "sixing", "huangying", "dongfang")
SOURCES = ("visit", "hotline_12345", "grid_center", "online")
EVENTS_PER_PAIR = 10  # a matter closed in one round (4 events) and one reopened once (6)
BLOCK_MATTERS = 500  # matters interleaved step by step, as a live stream would mix them
PUBLISH_CHUNK = 5_000


@dataclass(frozen=True)
class Message:
    """One event as it travels: subject, id and structured-mode JSON."""

    subject: str
    event_id: str
    payload: bytes

    @classmethod
    def of(cls, envelope: Envelope) -> Message:
        return cls(subject(envelope.short_type), envelope.id, envelope.to_json())


def reported(i: int) -> IssueReported:
    category = list(ROUTES)[i % len(ROUTES)]
    return IssueReported(
        title=f"Matter {i}: street lights out between the school and the market",
        description="Six lamps on Shiguan Road have been dark since Tuesday; residents walk "
        "home from the evening market in the dark.",
        category=category,
        village=VILLAGES[i % len(VILLAGES)],
        source=SOURCES[i % len(SOURCES)],
        reporter_ref=f"rpt_{new_id()}",
        address="Shiguan Road",
        lat=33.51,
        lon=119.21,
    )


def assigned(report: IssueReported, day: date, number: int) -> IssueAssigned:
    unit = ROUTES[report.category] or f"{report.village}_branch"
    return IssueAssigned(
        unit=unit,
        responsible_person_id=f"secretary-{report.village}",
        responsible_person_name="Wang Wu",
        deadline=day + timedelta(days=7),
        working_days=5,
        assignment_no=number,
        reason=f"routed on report: category {report.category} -> {unit}",
        category=report.category,
        village=report.village,
        calendar="weekdays",
    )


def resolved(unit: str, day: date, number: int) -> IssueResolved:
    return IssueResolved(
        unit=unit,
        summary="Replaced six lamps and the timer switch",
        resolved_by="wu-jun",
        assignment_no=number,
        lookback_due=day + timedelta(days=9),
    )


def lookback(passed: bool, day: date, number: int) -> IssueLookbackPassed | IssueLookbackFailed:
    cls = IssueLookbackPassed if passed else IssueLookbackFailed
    notes = "All lamps lit at night" if passed else "Two lamps still dark at night"
    return cls(
        visitor="grid-worker-7",
        notes=notes,
        assignment_no=number,
        lookback_due=day + timedelta(days=9),
        within_window=True,
    )


def matter(i: int, start: datetime) -> list[Envelope]:
    """One matter's events: even ``i`` closes in one round, odd ``i`` is reopened once."""
    issue_id = new_id()
    steps: list[tuple[Event, str, str]] = []
    report = reported(i)
    first = assigned(report, start.date(), 1)
    steps += [(report, "intake", report.source), (first, "assignment", "assignment")]
    steps.append((resolved(first.unit, start.date(), 1), "followup", "wu-jun"))
    steps.append((lookback(i % 2 == 0, start.date(), 1), "followup", "grid-worker-7"))
    if i % 2:
        second = assigned(report, start.date(), 2)
        steps.append((second, "assignment", "assignment"))
        steps.append((resolved(second.unit, start.date(), 2), "followup", "wu-jun"))
    envelopes: list[Envelope] = []
    for n, (event, service, actor) in enumerate(steps):
        envelopes.append(
            wrap(
                event,
                issue_id=issue_id,
                service=service,
                actor=actor,
                time=start + timedelta(hours=n),
                cause=envelopes[-1] if envelopes else None,
            )
        )
    return envelopes


def backlog(events: int) -> Iterator[Message]:
    """At least ``events`` canonical events; matters interleaved step by step in blocks."""
    pairs = -(-events // EVENTS_PER_PAIR)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    for first in range(0, 2 * pairs, BLOCK_MATTERS):
        block = [matter(i, start) for i in range(first, min(first + BLOCK_MATTERS, 2 * pairs))]
        for step in range(max(len(m) for m in block)):
            for envelopes in block:
                if step < len(envelopes):
                    yield Message.of(envelopes[step])


def backlog_size(events: int) -> int:
    return -(-events // EVENTS_PER_PAIR) * EVENTS_PER_PAIR


def reports(count: int) -> list[Message]:
    """``count`` issue.reported events, as intake would put them in its outbox."""
    now = datetime.now(UTC)
    return [
        Message.of(wrap(reported(i), issue_id=new_id(), service="intake", actor="visit", time=now))
        for i in range(count)
    ]


def headers(message: Message) -> dict[str, str]:
    return {"Nats-Msg-Id": message.event_id, "content-type": CONTENT_TYPE}


async def publish_all(
    nc: Client,
    messages: Iterator[Message] | list[Message],
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Publish with ``publish_async`` pipelining; raise unless every message was acked."""
    js = nc.jetstream()
    counts: Counter[str] = Counter()
    futures: list[asyncio.Future[Any]] = []
    for sent, message in enumerate(messages, start=1):
        futures.append(
            await js.publish_async(message.subject, message.payload, headers=headers(message))
        )
        counts[message.subject] += 1
        if len(futures) >= PUBLISH_CHUNK:
            await _check(futures)
            futures = []
            if progress:
                progress(sent)
    await _check(futures)
    return counts


async def _check(futures: list[asyncio.Future[Any]]) -> None:
    results = await asyncio.gather(*futures, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise Failed(f"{len(errors)} of {len(results)} publishes failed, e.g. {errors[0]!r}")


class Progress:
    """Prints ``label: done/total (rate/s)`` at most every few seconds."""

    def __init__(self, label: str, total: int, every: float = 5.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.start = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = done / max(now - self.start, 1e-9)
            print(f"  {self.label}: {done:,}/{self.total:,} ({rate:,.0f}/s)", flush=True)
