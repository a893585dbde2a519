"""Restoring a backup into empty servers, with the services stopped:

1. check the backup (every file's checksum) and the servers: a stream of the backup's
   that exists, or a database that holds any schema, is refused, named, unless told to
   replace them (then they are deleted first);
2. pg_restore the dump (one transaction), unless only the streams are restored;
3. restore every stream from its snapshot (its durable consumers with their state);
4. put back, in the original order, the tail messages the database knows of and the
   events it records as sent that the stream still lacks (``plan.py``);
5. mark each outbox row as the restored stream has it (sent at its sequence, or unsent);
6. where the restored stream numbers its messages as the old one did, carry the stream's
   epoch over: the server gives a restored stream a new creation time, which the services
   would otherwise take for a re-created stream.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nats.aio.client import Client
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from minqing.shared.backup import plan, postgres, tail
from minqing.shared.backup.backup import DUMP, streams_of, tools
from minqing.shared.backup.manifest import Manifest, StreamPart, check_all, load
from minqing.shared.backup.snapshot import restore_stream
from minqing.shared.contract.envelope import CONTENT_TYPE
from minqing.shared.ingress.cloudevents import RESUBMIT_HEADER
from minqing.shared.service.settings import Settings

Say = Callable[[str], None]


class NotEmpty(RuntimeError):
    """The servers hold what the backup would overwrite."""


@dataclass
class StreamOutcome:
    """What the restore did to one stream."""

    name: str
    snapshot_messages: int = 0
    tail_kept: int = 0
    tail_dropped: int = 0
    republished_rows: int = 0
    epoch_carried: bool = False

    def line(self) -> str:
        epoch = "same epoch" if self.epoch_carried else "NEW epoch (sequences differ)"
        return (
            f"stream {self.name}: {self.snapshot_messages} messages from the snapshot, "
            f"{self.tail_kept} from the tail ({self.tail_dropped} left out: the database does "
            f"not know them), {self.republished_rows} events published again from outboxes; "
            f"{epoch}"
        )


@dataclass
class Restored:
    """What a restore did."""

    streams: list[StreamOutcome] = field(default_factory=list)
    database: bool = False
    marked_sent: int = 0
    marked_unsent: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        found = ["database: restored from the dump" if self.database else "database: kept"]
        found += [s.line() for s in self.streams]
        found.append(
            f"outboxes: {self.marked_sent} rows marked sent as the stream holds them, "
            f"{self.marked_unsent} marked unsent (their relays publish them)"
        )
        found.append(f"restored in {self.seconds:.1f} s")
        return found


async def restore(
    nc: Client,
    engine: AsyncEngine,
    database_url: str,
    settings: Settings,
    source: Path,
    *,
    replace: bool = False,
    streams_only: bool = False,
    pg_bin: Path | None = None,
    say: Say = lambda line: None,
) -> Restored:
    """Restore the backup in ``source`` (see the module's docstring)."""
    started = time.monotonic()
    manifest = load(source)
    check_all(source, manifest)
    js = nc.jetstream()
    done = Restored(database=not streams_only)
    for role, name in streams_of(settings):
        if (part := next((p for p in manifest.streams if p.role == role), None)) is None:
            continue
        if part.name != name:
            say(
                f"the backup's {role} stream is {part.name}, the settings name {name}: "
                "restored as " + part.name + "; the services must be configured to match"
            )
    await _clear_the_way(js, engine, manifest, replace=replace, streams_only=streams_only, say=say)
    if not streams_only:
        await _restore_database(engine, database_url, source, manifest, pg_bin, say)
    for part in manifest.streams:
        info = await _restore_stream(nc, part, source, settings)
        done.streams.append(StreamOutcome(part.name, snapshot_messages=info))
        say(f"stream {part.name}: restored {info} messages from the snapshot")
    events = next((p.name for p in manifest.streams if p.role == "events"), None)
    rows = await outbox_rows(engine, events or settings.stream_name)
    present: dict[str, dict[str, int]] = {}
    for part, outcome in zip(manifest.streams, done.streams, strict=True):
        present[part.name] = await _complete(js, engine, part, source, rows, outcome)
    found = plan.marks(rows, present)
    await _mark(engine, found)
    done.marked_sent, done.marked_unsent = len(found.sent), len(found.unsent)
    for part, outcome in zip(manifest.streams, done.streams, strict=True):
        if outcome.epoch_carried:
            await _carry_epoch(js, engine, part)
    done.seconds = time.monotonic() - started
    return done


async def _clear_the_way(
    js: JetStreamContext,
    engine: AsyncEngine,
    manifest: Manifest,
    *,
    replace: bool,
    streams_only: bool,
    say: Say,
) -> None:
    streams = []
    for part in manifest.streams:
        try:
            info = await js.stream_info(part.name)
        except NotFoundError:
            continue
        streams.append(info)
    schemas = [] if streams_only else await postgres.contents(engine)
    if not replace and (streams or schemas):
        there = [
            f"stream {i.config.name} ({i.state.messages} messages, last sequence "
            f"{i.state.last_seq}, {i.state.consumer_count} consumers)"
            for i in streams
        ] + [str(s) for s in schemas]
        raise NotEmpty(
            "the servers are not empty: " + "; ".join(there) + ". Restore into empty "
            "servers, or pass --replace to delete these first"
        )
    for info in streams:
        assert info.config.name is not None
        await js.delete_stream(info.config.name)
        say(f"deleted stream {info.config.name} ({info.state.messages} messages)")
    if schemas:
        await postgres.drop(engine, schemas)
        say("dropped " + ", ".join(str(s) for s in schemas))


async def _restore_database(
    engine: AsyncEngine,
    database_url: str,
    source: Path,
    manifest: Manifest,
    pg_bin: Path | None,
    say: Say,
) -> None:
    major, _ = await postgres.server_version(engine)
    needed = max(major, postgres.major_of(manifest.database.pg_dump))
    program, program_version = postgres.pick("pg_restore", needed, tools(pg_bin, "pg_restore"))
    database = make_url(database_url).database or ""
    env = postgres.libpq_env(database_url)
    await postgres.run_tool(program, postgres.restore_args(source / DUMP, database), env)
    say(f"database {database}: restored with {program_version}")
    if behind := migrations_behind(manifest.database.migrations):
        say(
            "the database's schemas are not at this minqing's revisions ("
            + ", ".join(behind)
            + "): run `minqing migrate` before starting the services (a backup made by a "
            "newer minqing needs that minqing)"
        )


def migrations_behind(found: dict[str, list[str]]) -> list[str]:
    """Each schema whose revision differs from this code's head, said plainly."""
    from minqing.shared.persistence.migrations import SCHEMAS, heads

    return [
        f"{schema} at {', '.join(found.get(schema, [])) or 'none'}, head {', '.join(heads(schema))}"
        for schema in SCHEMAS
        if sorted(found.get(schema, [])) != sorted(heads(schema))
    ]


async def _restore_stream(nc: Client, part: StreamPart, source: Path, settings: Settings) -> int:
    config = dict(part.config)
    config["num_replicas"] = settings.stream_replicas  # this cluster's, not the old one's
    with (source / part.snapshot.path).open("rb") as snapshot:
        info = await restore_stream(nc, config, part.state, snapshot)
    return int(info.get("state", {}).get("messages", 0))


async def _complete(
    js: JetStreamContext,
    engine: AsyncEngine,
    part: StreamPart,
    source: Path,
    rows: list[plan.OutboxRow],
    outcome: StreamOutcome,
) -> dict[str, int]:
    """Put the tail and the missing events into a restored stream; its message ids."""
    mine = [r for r in rows if r.stream == part.name]
    known = {r.event_id for r in mine}
    present = await tail.message_ids(js, part.name)
    external = part.role == "ingress"
    marker = RESUBMIT_HEADER if external else None
    kept, dropped = [], 0
    for message in tail.read_file(source / part.tail.path):
        if plan.keeps(message, known, part.before_database, external=external, own_marker=marker):
            kept.append(message)
        else:
            dropped += 1
    order = plan.republish_order(kept, mine, present)
    payloads = await _row_messages(engine, [i.row for i in order if i.row is not None])
    messages = [_message_of(i, payloads) for i in order]
    acks = await tail.publish_in_order(js, part.name, messages)
    landed = []
    for item, message, ack in zip(order, messages, acks, strict=True):
        if (msg_id := message.msg_id) is not None:
            present.setdefault(msg_id, ack.seq)
        if item.message is not None:
            landed.append((item.original_seq, ack.seq))
    outcome.tail_kept = sum(1 for i in order if i.message is not None)
    outcome.tail_dropped = dropped
    outcome.republished_rows = sum(1 for i in order if i.row is not None)
    outcome.epoch_carried = plan.same_numbering(mine, present, landed, part.before_database)
    return present


def _message_of(
    item: plan.Republish, payloads: dict[tuple[str, int], plan.StreamMessage]
) -> plan.StreamMessage:
    if item.message is not None:
        return item.message
    assert item.row is not None
    return payloads[(item.row.schema, item.row.row_id)]


async def outbox_rows(engine: AsyncEngine, canonical: str) -> list[plan.OutboxRow]:
    """Every outbox row of every schema that has an outbox (but the ones that can never be
    published), with the stream it goes to (``canonical``: the events stream's name)."""
    found = []
    async with engine.connect() as conn:
        schemas = (
            await conn.execute(
                text(
                    "select table_schema, bool_or(column_name = 'stream') as routed "
                    "from information_schema.columns where table_name = 'outbox' "
                    "group by table_schema order by table_schema"
                )
            )
        ).all()
        for schema, routed in schemas:
            stream = "stream" if routed else "null"
            result = await conn.execute(
                text(
                    f"select id, event_id, {stream} as stream, published_at is not null as sent, "
                    f'stream_seq from "{schema}".outbox where failed_reason is null order by id'
                )
            )
            found += [
                plan.OutboxRow(
                    schema,
                    int(r.id),
                    str(r.event_id),
                    str(r.stream or canonical),
                    bool(r.sent),
                    None if r.stream_seq is None else int(r.stream_seq),
                )
                for r in result
            ]
    return found


async def _row_messages(
    engine: AsyncEngine, rows: list[plan.OutboxRow]
) -> dict[tuple[str, int], plan.StreamMessage]:
    """The messages of outbox rows, as their relay publishes them (``streams.py``)."""
    by_schema: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_schema[row.schema].append(row.row_id)
    sequences = {(r.schema, r.row_id): r.stream_seq or 0 for r in rows}
    found = {}
    async with engine.connect() as conn:
        for schema, ids in by_schema.items():
            routed = await conn.scalar(
                text(
                    "select count(*) from information_schema.columns where table_schema = "
                    ":schema and table_name = 'outbox' and column_name = 'stream'"
                ),
                {"schema": schema},
            )
            extra = (
                ", stream, headers, body"
                if routed
                else ", null as stream, null as headers, null as body"
            )
            result = await conn.execute(
                text(
                    f'select id, event_id, subject, payload{extra} from "{schema}".outbox '
                    "where id = any(:ids)"
                ),
                {"ids": ids},
            )
            for r in result:
                if r.stream is not None:
                    headers = {} if r.headers is not None else {"content-type": CONTENT_TYPE}
                    headers.update(r.headers or {})
                    data = r.body if r.body is not None else r.payload.encode()
                else:
                    headers, data = {"content-type": CONTENT_TYPE}, r.payload.encode()
                headers[plan.MSG_ID] = r.event_id
                seq = sequences[(schema, int(r.id))]
                found[(schema, int(r.id))] = plan.StreamMessage(
                    seq, r.subject, headers, bytes(data)
                )
    return found


async def _mark(engine: AsyncEngine, marks: plan.Marks) -> None:
    async with engine.begin() as conn:
        sent: dict[str, list[dict[str, int]]] = defaultdict(list)
        for row, seq in marks.sent:
            sent[row.schema].append({"row_id": row.row_id, "seq": seq})
        for schema, params in sent.items():
            await conn.execute(
                text(
                    f'update "{schema}".outbox set published_at = coalesce(published_at, '
                    "now()), stream_seq = :seq where id = :row_id"
                ),
                params,
            )
        unsent: dict[str, list[int]] = defaultdict(list)
        for row in marks.unsent:
            unsent[row.schema].append(row.row_id)
        for schema, ids in unsent.items():
            await conn.execute(
                text(
                    f'update "{schema}".outbox set published_at = null, stream_seq = null '
                    "where id = any(:ids)"
                ).bindparams(bindparam("ids")),
                {"ids": ids},
            )


async def _carry_epoch(js: JetStreamContext, engine: AsyncEngine, part: StreamPart) -> int:
    """Let every service see the restored stream as the incarnation it knew: each
    ``stream_epochs`` row of the old one now names the restored one's creation time."""
    if not part.created:
        return 0
    restored = (await js.stream_info(part.name)).created
    original = datetime.fromisoformat(part.created)
    changed = 0
    async with engine.begin() as conn:
        schemas = list(
            await conn.scalars(
                text(
                    "select table_schema from information_schema.tables "
                    "where table_name = 'stream_epochs' order by table_schema"
                )
            )
        )
        for schema in schemas:
            result = await conn.execute(
                text(
                    f'update "{schema}".stream_epochs set stream_created = :restored '
                    "where stream = :stream and stream_created = :original"
                ),
                {"restored": restored, "stream": part.name, "original": original},
            )
            changed += int(getattr(result, "rowcount", 0) or 0)
    return changed
