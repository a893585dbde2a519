"""Rebuild read models: replay the event stream into fresh tables, then swap them in.

1. Fresh tables: schema ``projection_rebuild`` (a failed run's leftover is dropped first)
   gets each rebuilt view's ``TABLES``, created from the metadata through
   ``schema_translate_map={"projection": "projection_rebuild"}``. No view reads another's
   tables (the list re-folds from its own ``issue_events``); should one ever, the tables of
   views not rebuilt appear there as plain SQL views of their live tables.
2. Replay: each view's own ``apply_batch`` runs on sessions whose connections carry that
   map, so its Core statements and its bulk statements (``shared/persistence/bulk.py``)
   write the fresh tables. The events come as the live consumers get them (``replay.py``): those the
   stream no longer has (earlier stream epochs) from the live audit table, then the
   canonical stream from its first sequence; an event id is applied once per view, as
   the live inbox does. The live consumers, their inbox, positions and durables are not
   touched (the stream's epoch is looked up as a consumer does: numbered if never seen).
3. Swap, in ONE transaction, while the live projection keeps consuming: take the audit
   chain's advisory lock, then ``LOCK TABLE`` the live tables being replaced (in
   ``lock_order``: the issues view's before ``events``), read the stream's
   last sequence L, replay the tail (last replayed, L] into the fresh tables, move each
   live table to ``projection_retired`` and each fresh one to ``projection``; commit.
   Then both side schemas are dropped.

Why the swap loses nothing and doubles nothing: a live consumer's transaction either
committed before the locks were granted, so its events were in the stream by then (<= L)
and are in the fresh tables too; or it runs after the swap and writes the new tables
(PostgreSQL looks a name up again after a lock wait, and a prepared statement is planned
again when its table changed). Such a late transaction may carry events the fresh tables
already have: the views are idempotent for them (history skips stored event ids; issues
re-folds a matter when an event comes behind its position), and the live inbox, which says
what each consumer has processed, is the same before and after. The chain is sealed again
in the same (epoch, sequence) order, so the same events give the same hashes: the swap
checks that the rebuilt chain holds the live head's hash at the live head's position, and
refuses (nothing swapped) when it does not, unless told to (``--allow-new-chain``), since
checkpoints kept outside would no longer verify.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Protocol

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Table, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from minqing.services.projection.replay import (
    Replay,
    StreamReader,
    ViewCount,
    count_before,
    stored_before,
)
from minqing.services.projection.schema import SCHEMA, metadata
from minqing.services.projection.store import plumbing
from minqing.services.projection.views import BY_NAME, VIEWS, history, unknown
from minqing.shared.messaging.consumer import Delivery
from minqing.shared.messaging.streams import stream_created
from minqing.shared.messaging.subscription import Epochs
from minqing.shared.persistence.db import Sessions, make_sessions
from minqing.shared.persistence.migrations import heads
from minqing.shared.service.settings import Settings

FRESH = "projection_rebuild"
RETIRED = "projection_retired"
_REBUILD_LOCK = 0x4D51_5242  # "MQRB": one rebuild at a time (held by the session)
_CHAIN_LOCK: int = history.CHAIN_LOCK  # what the live history consumer takes first
CATCH_UP_ROUNDS = 5  # passes over what arrived meanwhile, before the swap
SWAP_ATTEMPTS = 10
# A live transaction holding a table longer: give way, catch up, try again. Short, since
# while the swap waits for a table every new reader of it (the API) queues behind it.
SWAP_LOCK_TIMEOUT = "1s"
# lock_not_available (the timeout above), deadlock_detected (a reader that took the tables
# in another order): give the locks up, catch up, try again.
_TRY_AGAIN = ("55P03", "40P01")


class RebuildError(Exception):
    """A rebuild cannot go on; nothing was swapped."""


class UnknownView(RebuildError):
    """A view name that is not among ``VIEWS``."""


class Progress(Protocol):
    """What a rebuild reports while it runs."""

    def total(self, events: int) -> None: ...

    def advance(self, events: int) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class Summary:
    """What a rebuild did."""

    views: list[str]
    events: int = 0  # messages and stored events read (unreadable ones included)
    earlier: int = 0  # of them, events the stream no longer has (from the audit table)
    tail: int = 0  # of them, replayed inside the swap transaction
    unreadable: int = 0
    outcomes: dict[str, ViewCount] = field(default_factory=dict)
    seconds: float = 0.0
    chain: str | None = None  # history only: how the rebuilt audit chain compares


def select_views(names: Sequence[str]) -> tuple[ModuleType, ...]:
    """The views named (all when none), in ``VIEWS`` order; ``UnknownView`` otherwise."""
    if missing := unknown(names):
        raise UnknownView(
            f"unknown view {', '.join(map(repr, missing))}; the views are: {', '.join(BY_NAME)}"
        )
    wanted = set(names) or set(BY_NAME)
    return tuple(view for view in VIEWS if view.NAME in wanted)


def lock_order(views: Sequence[ModuleType]) -> list[Table]:
    """The live tables to replace, in one fixed order (``VIEWS`` reversed): each live
    consumer locks only its own view's tables, so any fixed order is safe; a view that
    read another's would have to come before it (``VIEWS`` lists each after those it reads)."""
    chosen = {view.NAME for view in views}
    return [t for view in reversed(VIEWS) if view.NAME in chosen for t in view.TABLES]


def _name(schema: str, table: Table) -> str:
    return f'"{schema}"."{table.name}"'


async def rebuild(
    engine: AsyncEngine,
    js: JetStreamContext,
    settings: Settings,
    views: Sequence[ModuleType],
    *,
    batch: int,
    progress: Progress,
    allow_new_chain: bool = False,
) -> Summary:
    """Rebuild ``views`` from the canonical stream (see the module's docstring). When the
    rebuilt audit chain would differ from the live one (the live trail was changed by
    hand, or sealed out of stream order), nothing is swapped unless ``allow_new_chain``."""
    started = time.monotonic()
    run = _Run(engine, js, settings, views, batch, progress, allow_new_chain)
    async with engine.connect() as guard:
        if not await guard.scalar(select(func.pg_try_advisory_lock(_REBUILD_LOCK))):
            raise RebuildError("another rebuild is running on this database")
        await guard.commit()
        try:
            await run.all()
        finally:
            try:
                await _drop_side_schemas(engine)
            except Exception as exc:
                if not run.swapped:
                    raise
                progress.note(
                    f"the old tables stay in {RETIRED} ({exc}); the next rebuild drops them"
                )
            await guard.execute(select(func.pg_advisory_unlock(_REBUILD_LOCK)))
            await guard.commit()
    summary = run.summary
    summary.outcomes = dict(run.replay.counts)
    summary.unreadable = run.replay.unreadable
    summary.seconds = time.monotonic() - started
    return summary


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    return str(state) if state else None


async def _drop_side_schemas(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f'drop schema if exists "{FRESH}" cascade'))
        await conn.execute(text(f'drop schema if exists "{RETIRED}" cascade'))


class _Run:
    """One rebuild's state: where it reads, what it replayed."""

    def __init__(
        self,
        engine: AsyncEngine,
        js: JetStreamContext,
        settings: Settings,
        views: Sequence[ModuleType],
        batch: int,
        progress: Progress,
        allow_new_chain: bool,
    ) -> None:
        self.engine = engine
        self.js = js
        self.stream = settings.stream_name
        self.prefix = settings.subject_prefix
        self.views = tuple(views)
        self.batch = batch
        self.progress = progress
        self.live: Sessions = make_sessions(engine)
        self.fresh: Sessions = make_sessions(
            engine.execution_options(schema_translate_map={SCHEMA: FRESH})
        )
        self.replay = Replay([view.NAME for view in views])
        self.summary = Summary(views=[view.NAME for view in views])
        self.expected = 0
        self.allow_new_chain = allow_new_chain
        self.swapped = False

    async def all(self) -> None:
        try:
            info = await self.js.stream_info(self.stream)
        except NotFoundError:
            raise RebuildError(f"the event stream {self.stream} does not exist") from None
        await self._same_schema_version()
        created = stream_created(info)
        epoch = await Epochs(self.live, plumbing).resolve(self.stream, created)
        await self._prepare()
        async with self.live() as session:
            earlier = await count_before(session, (epoch, max(info.state.first_seq, 1)))
        self.expected = earlier + info.state.messages
        self.progress.total(self.expected)
        if earlier:
            self.progress.note(
                f"replaying {earlier} events of earlier stream epochs from the audit trail"
            )
            await self._earlier((epoch, max(info.state.first_seq, 1)))
        reader = StreamReader(self.js, self.stream, self.prefix, epoch)
        await reader.open(info.state.first_seq)
        try:
            await self._catch_up(reader)
            await self._analyze()
            await self._swap(reader, created)
        finally:
            await reader.close()

    async def _same_schema_version(self) -> None:
        """The fresh tables are made from this code's metadata: the database must be at
        this code's migration head, or the swap would put in tables of another shape."""
        async with self.live() as session:
            found = set(
                await session.scalars(text(f'select version_num from "{SCHEMA}".alembic_version'))
            )
        wanted = set(heads("projection"))
        if found != wanted:
            raise RebuildError(
                f"the database's {SCHEMA} schema is at revision {', '.join(sorted(found))}, "
                f"this minqing expects {', '.join(sorted(wanted))}: run `minqing migrate` "
                "first (or rebuild with the minqing that matches the database)"
            )

    async def _prepare(self) -> None:
        """A fresh schema with the views' tables; the tables of views not rebuilt that
        these read appear there as views of the live tables."""
        await _drop_side_schemas(self.engine)
        tables = [t for view in self.views for t in view.TABLES]
        others = [t for view in VIEWS if view not in self.views for t in view.TABLES]
        translated = self.engine.execution_options(schema_translate_map={SCHEMA: FRESH})
        async with translated.begin() as conn:
            await conn.execute(text(f'create schema "{FRESH}"'))
            await conn.run_sync(lambda c: metadata.create_all(c, tables=tables, checkfirst=False))
            for table in others:
                live = _name(SCHEMA, table)
                await conn.execute(
                    text(f"create view {_name(FRESH, table)} as select * from {live}")
                )

    async def _earlier(self, before: tuple[int, int]) -> None:
        async with self.live() as reading:
            async for found, unreadable in stored_before(reading, before, self.prefix, self.batch):
                async with self.fresh() as session:
                    await self._apply(session, found)
                    await session.commit()
                self._count(len(found) + unreadable, unreadable)
                self.summary.earlier += len(found) + unreadable

    async def _catch_up(self, reader: StreamReader) -> None:
        """Replay the stream up to its end, again while the rest is more than a batch."""
        for round_ in range(CATCH_UP_ROUNDS):
            last = (await self.js.stream_info(self.stream)).state.last_seq
            if round_ and last - reader.last <= self.batch:
                return
            self._grow(last - reader.last)
            while reader.last < last:
                read = await reader.batch(self.batch, last)
                if not read.messages:
                    break  # the stream ends earlier than it said (messages deleted)
                async with self.fresh() as session:
                    await self._apply(session, read.deliveries)
                    await session.commit()
                self._count(read.messages, read.unreadable)

    async def _analyze(self) -> None:
        """Planner statistics for the fresh tables, before they serve queries."""
        async with self.engine.connect() as conn:
            for view in self.views:
                for table in view.TABLES:
                    await conn.execute(text(f"analyze {_name(FRESH, table)}"))
            await conn.commit()

    async def _swap(self, reader: StreamReader, created: object) -> None:
        """The tail and the swap in one transaction; a live transaction that holds a table
        too long makes it give up the locks, catch up and try again."""
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            self.progress.note("swapping in the rebuilt tables")
            try:
                async with self.fresh() as session:
                    await self._swap_once(session, reader, created)
                return
            except DBAPIError as exc:
                if _sqlstate(exc) not in _TRY_AGAIN or attempt == SWAP_ATTEMPTS:
                    raise
                self.progress.note("the live tables are busy: catching up, then again")
                await self._catch_up(reader)
        raise AssertionError("unreachable")

    async def _swap_once(
        self, session: AsyncSession, reader: StreamReader, created: object
    ) -> None:
        await session.execute(text(f"set local lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
        await session.execute(select(func.pg_advisory_xact_lock(_CHAIN_LOCK)))
        tables = lock_order(self.views)
        for table in tables:
            await session.execute(
                text(f"lock table {_name(SCHEMA, table)} in access exclusive mode")
            )
        info = await self.js.stream_info(self.stream)
        if stream_created(info) != created:
            raise RebuildError("the event stream was re-created during the rebuild: run it again")
        last = info.state.last_seq
        self._grow(last - reader.last)
        while reader.last < last:
            read = await reader.batch(self.batch, last)
            if not read.messages:
                break
            await self._apply(session, read.deliveries)
            self._count(read.messages, read.unreadable)
            self.summary.tail += read.messages
        if history in self.views:
            same, self.summary.chain = await _compare_chains(session)
            if not same and not self.allow_new_chain:
                raise RebuildError(
                    f"the rebuilt audit chain differs from the live one: {self.summary.chain}. "
                    "Checkpoints taken before would no longer verify; to swap it in anyway, "
                    "pass --allow-new-chain"
                )
        await session.execute(text(f'create schema "{RETIRED}"'))
        for table in tables:
            await session.execute(
                text(f'alter table {_name(SCHEMA, table)} set schema "{RETIRED}"')
            )
            await session.execute(text(f'alter table {_name(FRESH, table)} set schema "{SCHEMA}"'))
        await session.commit()
        self.swapped = True

    async def _apply(self, session: AsyncSession, deliveries: Sequence[Delivery]) -> None:
        for view in self.views:
            todo = self.replay.fresh(view.NAME, deliveries)
            outcomes = await view.apply_batch(session, todo) if todo else {}
            self.replay.settle(view.NAME, todo, outcomes)
        self.replay.taken(deliveries)

    def _count(self, messages: int, unreadable: int) -> None:
        self.replay.read += messages
        self.replay.unreadable += unreadable
        self.summary.events += messages
        self.progress.advance(messages)

    def _grow(self, remaining: int) -> None:
        """The stream grew while the rebuild ran: so does the expected total."""
        wanted = self.summary.events + max(remaining, 0)
        if wanted > self.expected:
            self.expected = wanted
            self.progress.total(wanted)


async def _compare_chains(session: AsyncSession) -> tuple[bool, str]:
    """How the rebuilt audit chain compares with the live one (both locked): the same
    hash at the live head's position means the same chain up to there."""
    table = history.events
    live = (
        await session.execute(
            text(
                f"select log_seq, hash, (select count(*) from {_name(SCHEMA, table)}) "
                f"from {_name(SCHEMA, table)} order by log_seq desc limit 1"
            )
        )
    ).first()
    fresh_count = await session.scalar(text(f"select count(*) from {_name(FRESH, table)}"))
    if live is None:
        return True, f"new: {fresh_count} entries (the live trail was empty)"
    fresh_hash = await session.scalar(
        text(f"select hash from {_name(FRESH, table)} where log_seq = :n"), {"n": live[0]}
    )
    if fresh_hash == live[1]:
        more = fresh_count - live[2]
        extended = f", then {more} entries the live trail had not recorded yet" if more else ""
        return True, f"the same chain up to the live head (log_seq {live[0]}, {live[1]}){extended}"
    return False, (
        f"CHANGED: {fresh_count} entries (live {live[2]}); at the live head, log_seq {live[0]}, "
        f"the hash is {fresh_hash or 'missing'} (live {live[1]})"
    )
