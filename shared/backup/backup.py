"""Taking a backup while the system runs, in three steps whose order is the point:

1. every stream's JetStream snapshot, with its durable consumers (instant T1);
2. one pg_dump of the whole database (its snapshot, T2, is taken just after it starts);
3. every stream's tail: the messages stored after its snapshot, read now (T3).

Consumers acknowledge a message only after its effects are committed, so the consumers
in a snapshot are never ahead of the database dumped after it: after a restore they are
at most behind, and the inbox absorbs what comes again. The tail holds everything
published up to the dump's snapshot and a little after, so the restore can put back every
event the database knows of, in its original order (``plan.py``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from nats.aio.client import Client
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from minqing.shared.backup import postgres, tail
from minqing.shared.backup.manifest import (
    FORMAT,
    MANIFEST,
    DatabasePart,
    FilePart,
    Manifest,
    StreamPart,
    file_part,
)
from minqing.shared.backup.snapshot import snapshot_stream
from minqing.shared.service.settings import Settings

DUMP = "postgres.dump"
Say = Callable[[str], None]


class BackupExists(RuntimeError):
    """The backup's directory exists already."""


def streams_of(settings: Settings) -> list[tuple[str, str]]:
    """The streams a backup holds, by role: the canonical events, department systems'
    reports, their outcomes, and dead letters."""
    return [
        ("events", settings.stream_name),
        ("ingress", settings.ingress_stream_name),
        ("outcomes", settings.outcomes_stream_name),
        ("dlq", settings.dlq_stream_name),
    ]


def now() -> str:
    return datetime.now(UTC).isoformat()


def minqing_version() -> str:
    try:
        return version("minqing")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class _Snapped:
    role: str
    name: str
    created: str
    config: dict[str, object]
    state: dict[str, object]
    consumers: list[str]
    snapshot: FilePart
    taken_at: str


async def take(
    nc: Client,
    engine: AsyncEngine,
    database_url: str,
    settings: Settings,
    target: Path,
    *,
    pg_bin: Path | None = None,
    say: Say = lambda line: None,
) -> Manifest:
    """Back up the streams and the database into the new directory ``target`` (written
    beside it first, then renamed: a backup that exists is complete)."""
    if target.exists():  # noqa: ASYNC240 (a local directory, before any I/O of note)
        raise BackupExists(f"{target} exists already: a backup goes into a new directory")
    partial = target.parent / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "streams").mkdir(parents=True)
    started = now()
    js = nc.jetstream()
    snapped = [
        s
        for s in [
            await _snapshot(nc, js, role, name, partial, say) for role, name in streams_of(settings)
        ]
        if s
    ]
    database, before, after = await _dump(js, engine, database_url, snapped, partial, pg_bin, say)
    streams = [await _tail(js, s, before[s.name], after[s.name], partial, say) for s in snapped]
    manifest = Manifest(
        format=FORMAT,
        minqing_version=minqing_version(),
        started_at=started,
        finished_at=now(),
        nats_server=_version(nc),
        streams=streams,
        database=database,
    )
    (partial / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    partial.rename(target)
    return manifest


def _version(nc: Client) -> str:
    v = nc.connected_server_version
    return f"{v.major}.{v.minor}.{v.patch}"


async def _snapshot(
    nc: Client, js: JetStreamContext, role: str, name: str, root: Path, say: Say
) -> _Snapped | None:
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        say(f"stream {name} does not exist: nothing to back up")
        return None
    consumers = sorted(c.name for c in await js.consumers_info(name) if c.config.durable_name)
    relative = f"streams/{name}.tar.s2"
    taken_at = now()
    with (root / relative).open("wb") as out:
        snap = await snapshot_stream(nc, name, out)
    part = file_part(root, relative)
    say(
        f"stream {name}: snapshot of {snap.state.get('messages', 0)} messages "
        f"(last sequence {snap.state.get('last_seq', 0)}), {len(consumers)} consumers, "
        f"{part.size} bytes"
    )
    created = info.created.isoformat() if info.created else ""
    return _Snapped(role, name, created, snap.config, snap.state, consumers, part, taken_at)


async def _dump(
    js: JetStreamContext,
    engine: AsyncEngine,
    database_url: str,
    snapped: list[_Snapped],
    root: Path,
    pg_bin: Path | None,
    say: Say,
) -> tuple[DatabasePart, dict[str, int], dict[str, int]]:
    major, full = await postgres.server_version(engine)
    program, program_version = postgres.pick("pg_dump", major, tools(pg_bin, "pg_dump"))
    before = {s.name: (await js.stream_info(s.name)).state.last_seq for s in snapped}
    started = now()
    env = postgres.libpq_env(database_url)
    await postgres.run_tool(program, postgres.dump_args(root / DUMP), env)
    finished = now()
    after = {s.name: (await js.stream_info(s.name)).state.last_seq for s in snapped}
    part = file_part(root, DUMP)
    say(f"database: pg_dump ({program_version}) of PostgreSQL {full}, {part.size} bytes")
    return (
        DatabasePart(
            database=make_url(database_url).database or "",
            server_version=full,
            pg_dump=program_version,
            dump=part,
            migrations=await postgres.migration_heads(engine),
            started_at=started,
            finished_at=finished,
        ),
        before,
        after,
    )


def tools(pg_bin: Path | None, name: str) -> list[Path] | None:
    """The program in ``--pg-bin`` when given, else None (look in the usual places)."""
    return None if pg_bin is None else [pg_bin / name]


async def _tail(
    js: JetStreamContext, s: _Snapped, before: int, after: int, root: Path, say: Say
) -> StreamPart:
    relative = f"streams/{s.name}.tail.jsonl"
    last_seq = int(str(s.state.get("last_seq", 0)))
    tail_at = now()
    upto = (await js.stream_info(s.name)).state.last_seq
    count, tail_last = 0, last_seq
    with (root / relative).open("w", encoding="utf-8") as out:
        async for batch in tail.read(js, s.name, last_seq, upto):
            count += tail.write_lines(out, batch)
            tail_last = batch[-1].seq
    if count:
        say(
            f"stream {s.name}: tail of {count} messages after the snapshot "
            f"({last_seq + 1}-{tail_last})"
        )
    return StreamPart(
        role=s.role,
        name=s.name,
        created=s.created,
        config=dict(s.config),
        state=dict(s.state),
        consumers=s.consumers,
        snapshot=s.snapshot,
        before_database=before,
        after_database=after,
        tail=file_part(root, relative),
        tail_messages=count,
        tail_last_seq=tail_last,
        snapshot_at=s.taken_at,
        tail_at=tail_at,
    )
