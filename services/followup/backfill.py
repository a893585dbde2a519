"""Fill what a visitor needs on the site into cases stored before followup kept it.

Migration ``followup_0007`` added ``title``, ``village``, ``address`` (from
``issue.reported``) and ``summary`` (from ``issue.resolved``) to ``followup.cases`` as
empty columns: a migration cannot read the event stream, and followup's consumer had read
those events long before, so a matter reported before the upgrade kept them empty. Its
look-back then showed on ``GET /api/v1/lookbacks/mine`` with no title, village or summary,
and line staff with villages of their own did not see it at all (the list filters on the
village).

``backfill_cases`` reads the two event types from the canonical stream (an ephemeral
consumer, no acks, removed when done; the service's durable is not touched) and writes the
missing fields only (``coalesce``): a value the running service wrote is never replaced,
and running it again changes nothing. It is an operator's step once after the upgrade
(``minqing followup backfill-cases``, as ``minqing projection rebuild``); followup warns at
start while cases lack them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from minqing.services.followup.store import cases
from minqing.shared.contract.envelope import NewerVersion, UnreadableEvent, decode, parse
from minqing.shared.contract.events import Event, IssueReported, IssueResolved
from minqing.shared.service.settings import Settings

FETCH_WAIT_SECONDS = 1.0
READER_IDLE_SECONDS = 120.0  # the server removes the reader's consumer after this idle time

# A case lacks what the list shows: the report's title, or the resolution's summary once
# it was resolved (a matter closed or reopened was resolved at least once).
_MISSING = or_(
    cases.c.title.is_(None),
    cases.c.village.is_(None),
    and_(cases.c.summary.is_(None), cases.c.status.in_(("resolved", "closed", "reopened"))),
)


@dataclass
class Backfilled:
    """What a backfill found and did."""

    missing: int = 0  # cases lacking a field before
    filled: int = 0  # cases given at least one field
    left: list[str] = field(default_factory=list)  # still lacking (their events are gone)
    read: int = 0  # events read from the stream


async def missing_cases(conn: AsyncConnection) -> int:
    """How many cases lack a field the look-back list shows."""
    found = await conn.scalar(select(func.count()).select_from(cases).where(_MISSING))
    return int(found or 0)


async def backfill_cases(
    engine: AsyncEngine, js: JetStreamContext, settings: Settings, *, batch: int = 500
) -> Backfilled:
    """Fill title, village and address (the matter's ``issue.reported``) and summary (its
    latest ``issue.resolved``) where a case lacks them, from the canonical stream."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(cases.c.issue_id).where(_MISSING))
        wanted = {row.issue_id for row in rows}
    done = Backfilled(missing=len(wanted))
    if not wanted:
        return done
    found: dict[str, dict[str, str | None]] = {}
    async for event_issue, event in _read(js, settings, batch, done):
        if event_issue not in wanted:
            continue
        fields = found.setdefault(event_issue, {})
        if isinstance(event, IssueReported) and "title" not in fields:
            fields.update(title=event.title, village=event.village, address=event.address)
        elif isinstance(event, IssueResolved):
            fields["summary"] = event.summary  # the latest resolution's, as the service keeps
    async with engine.begin() as conn:
        for issue_id, fields in sorted(found.items()):
            values = {name: func.coalesce(cases.c[name], value) for name, value in fields.items()}
            await conn.execute(update(cases).where(cases.c.issue_id == issue_id).values(values))
            done.filled += 1
    async with engine.connect() as conn:
        rows = await conn.execute(select(cases.c.issue_id).where(_MISSING))
        done.left = sorted(row.issue_id for row in rows)
    return done


async def _read(
    js: JetStreamContext, settings: Settings, batch: int, done: Backfilled
) -> AsyncIterator[tuple[str, Event]]:
    """The stream's ``issue.reported`` and ``issue.resolved`` events, in stream order."""
    subjects = [f"{settings.subject_prefix}.{cls.TYPE}" for cls in (IssueReported, IssueResolved)]
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        filter_subjects=subjects,
        inactive_threshold=READER_IDLE_SECONDS,
        mem_storage=True,
    )
    sub = await js.pull_subscribe(subjects[0], stream=settings.stream_name, config=config)
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        while pending > 0:
            try:
                messages = await sub.fetch(batch=min(batch, pending), timeout=FETCH_WAIT_SECONDS)
            except TimeoutError:
                break
            for message in messages:
                pending = message.metadata.num_pending or 0
                done.read += 1
                try:
                    envelope = parse(message.data)
                    event = decode(envelope)
                except (UnreadableEvent, NewerVersion):
                    continue  # not an event this code reads: nothing to fill from it
                if event is not None:
                    yield envelope.subject, event
    finally:
        with contextlib.suppress(Exception):
            info = await sub.consumer_info()
            await sub.unsubscribe()
            await js.delete_consumer(settings.stream_name, info.name)
