"""The raw limit for the closed loop: four minimal processes on nats-py + asyncpg + uvicorn.

``python -m bench.raw_loop ROLE PORT`` runs one of them, each a plain ASGI app under uvicorn
(``uvicorn.run`` with the services' settings: uvloop and httptools when installed, log level
warning, no access log), with one asyncpg pool and one NATS connection, mirroring the four
services in the same four HTTP calls and the same events:

- ``intake``: ``POST /api/v1/reports``: one transaction storing the reporter's contact, the
  report and an outbox row (the ``issue.reported`` event); 201 ``{issue_id, event_id}``.
- ``assignment``: a durable pull consumer on ``issue.reported``: per fetched batch, one
  transaction storing an assignment row and an outbox row (``issue.assigned``) per report;
  acks after the commit.
- ``followup``: a durable pull consumer on ``issue.reported`` and ``issue.assigned`` folding
  them into a case row (one transaction per batch, acks after the commit);
  ``GET /api/v1/issues/{id}/case``; ``POST .../resolution`` and ``POST .../lookback``, each
  one transaction moving the case on (assigned → resolved → closed, else 409) with an
  outbox row (``issue.resolved``, ``issue.lookback_passed``); 201.
- ``projection``: a durable pull consumer on every event folding it into an ``issues`` row
  (one transaction per batch, acks after the commit); ``GET /api/v1/issues/{id}``.

Every outbox leaves through a relay in the same process, as the services' do: woken after a
commit, it publishes what was committed with ``publish_async`` (``Nats-Msg-Id`` = event id),
awaits every JetStream ack, and marks the rows sent (published_at, stream sequence) in one
statement. The events are CloudEvents JSON made from the real envelopes
(``minqing.shared.contract``: one event of each type is wrapped at start and used as the
template; each event gets its own id, subject, time, correlation and causation), so they
have the same subjects, attributes and data fields, of similar size.

What it leaves out (it is the stack's limit for this work, not a service): no identity (no
credentials read or checked), no validation beyond reading the JSON, no duplicate detection
of reports, no routing rules, registry or working-day calendar (a report's unit comes from
its category, the deadline is a week later), no inbox (a redelivered event is not detected),
no dead letters or retries, no audit trail or hash chain, no history read model (the
projection keeps one row per matter), no reporter replies or status notes (intake consumes
nothing), no outbox scan at start, no relay lock, no logs or metrics, no tracing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import nats
import uvicorn
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from ulid import ULID

from bench.raw_endpoint import reported_data

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Event = dict[str, Any]

ROLES = ("intake", "assignment", "followup", "projection")
CONTENT_TYPE = "application/cloudevents+json"
FETCH_WAIT_SECONDS = 0.5  # as the services' consumers
REPORTED, ASSIGNED = "issue.reported", "issue.assigned"
RESOLVED, PASSED = "issue.resolved", "issue.lookback_passed"
# Reference codes (bench/events.py ROUTES): the unit a category goes to.
ROUTES = {
    "street_lights": "town_construction",
    "water": "water_station",
    "sanitation": "environment_office",
}
OUTBOX = """
create table {schema}.outbox (
    id bigserial primary key, event_id text not null unique, subject text not null,
    payload text not null, created_at timestamptz not null default now(),
    published_at timestamptz, stream_seq bigint
);
create index on {schema}.outbox (id) where published_at is null;
"""
SCHEMAS = {
    "intake": """
create table raw_intake.reporter_contacts (
    reporter_ref text primary key, name text, phone text, created_at timestamptz not null
);
create table raw_intake.reports (
    issue_id text primary key, event_id text not null unique, title text not null,
    description text not null, category text not null, village text not null,
    source text not null, reporter_ref text, address text, lat double precision,
    lon double precision, received_at timestamptz not null
);
""",
    "assignment": """
create table raw_assignment.assignments (
    issue_id text not null, assignment_no integer not null, unit text not null,
    deadline date not null, event_id text not null unique, assigned_at timestamptz not null,
    primary key (issue_id, assignment_no)
);
""",
    "followup": """
create table raw_followup.cases (
    issue_id text primary key, status text not null, unit text, village text,
    category text, updated_at timestamptz not null
);
""",
    "projection": """
create table raw_projection.issues (
    issue_id text primary key, status text not null, title text, category text,
    village text, source text, unit text, reported_at timestamptz,
    updated_at timestamptz not null, position bigint not null
);
""",
}
STATUS_AFTER = {REPORTED: "reported", ASSIGNED: "assigned", RESOLVED: "resolved", PASSED: "closed"}


# --------------------------------------------------------------------------------- events


def templates() -> dict[str, Event]:
    """One real envelope of each type the loop emits (``minqing.shared.contract``), as JSON
    objects to copy: made once at start, so no pydantic per event."""
    from bench import events
    from minqing.shared.contract.envelope import wrap

    now = datetime.now(UTC)
    report = events.reported(0)
    first = events.assigned(report, now.date(), 1)
    made = {
        REPORTED: (report, "intake"),
        ASSIGNED: (first, "assignment"),
        RESOLVED: (events.resolved(first.unit, now.date(), 1), "followup"),
        PASSED: (events.lookback(True, now.date(), 1), "followup"),
    }
    return {
        short: json.loads(wrap(event, issue_id="x", service=service, actor="x", time=now).to_json())
        for short, (event, service) in made.items()
    }


class Events:
    """Builds events of the loop from the templates."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.templates = templates()

    def make(
        self, short: str, issue_id: str, actor: str, data: dict[str, Any], cause: Event | None
    ) -> tuple[str, str, str]:
        """(event id, subject, JSON) of a new ``short`` event about ``issue_id``."""
        event = copy.copy(self.templates[short])
        event_id = str(ULID())
        event["id"] = event_id
        event["subject"] = issue_id
        event["time"] = datetime.now(UTC).isoformat()
        event["actor"] = actor
        event["correlationid"] = cause["correlationid"] if cause else event_id
        if cause:
            event["causationid"] = cause["id"]
        else:
            event.pop("causationid", None)
        event["data"] = {**self.templates[short]["data"], **data}
        return event_id, f"{self.prefix}.{short}", json.dumps(event)


# ---------------------------------------------------------------------------------- relay


class Relay:
    """Publishes committed outbox rows (handed over after each commit) and marks them sent."""

    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext, schema: str) -> None:
        self.pool, self.js = pool, js
        self.queue: list[tuple[int, str, str, str]] = []  # row id, event id, subject, JSON
        self.wake = asyncio.Event()
        self.mark = (
            f"update {schema}.outbox o set published_at = now(), stream_seq = s.seq"
            " from unnest($1::bigint[], $2::bigint[]) as s(id, seq) where o.id = s.id"
        )

    def committed(self, rows: list[tuple[int, str, str, str]]) -> None:
        self.queue += rows
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                batch, self.queue = self.queue, []
                futures = [
                    await self.js.publish_async(
                        subject,
                        payload.encode(),
                        headers={"Nats-Msg-Id": event_id, "content-type": CONTENT_TYPE},
                    )
                    for _, event_id, subject, payload in batch
                ]
                acks = await asyncio.gather(*futures)
                ids = [row[0] for row in batch]
                await self.pool.execute(self.mark, ids, [ack.seq for ack in acks])


async def insert_outbox(
    conn: asyncpg.Connection, schema: str, events: list[tuple[str, str, str]]
) -> list[tuple[int, str, str, str]]:
    """Outbox rows for ``events`` (id, subject, JSON) in one statement, in the caller's
    transaction; the rows as the relay takes them."""
    if not events:
        return []
    ids, subjects, payloads = zip(*events, strict=True)
    rows = await conn.fetch(
        f"insert into {schema}.outbox (event_id, subject, payload)"
        " select * from unnest($1::text[], $2::text[], $3::text[]) returning id, event_id",
        list(ids),
        list(subjects),
        list(payloads),
    )
    row_ids = {r["event_id"]: r["id"] for r in rows}
    return [(row_ids[e], e, s, p) for e, s, p in events]


# ------------------------------------------------------------------------------ consumers


async def consume(
    js: JetStreamContext,
    stream: str,
    durable: str,
    subjects: list[str],
    batch: int,
    apply: Callable[[list[tuple[int, Event]]], Awaitable[None]],
) -> Callable[[], Awaitable[None]]:
    """Create the durable pull consumer now; return the loop that fetches a batch (the next
    one fetched while this one commits, as the services do), applies it in one transaction
    and acks every message after the commit."""
    config = ConsumerConfig(
        durable_name=durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30,
        max_ack_pending=batch * 10,
        filter_subjects=subjects,
    )
    await js.add_consumer(stream, config=config)
    subscription = await js.pull_subscribe_bind(durable=durable, stream=stream)

    async def fetch() -> list[Msg]:
        try:
            return list(await subscription.fetch(batch=batch, timeout=FETCH_WAIT_SECONDS))
        except TimeoutError:
            return []

    async def run() -> None:
        pending = asyncio.create_task(fetch())
        try:
            while True:
                messages = await pending
                pending = asyncio.create_task(fetch())
                if not messages:
                    continue
                await apply([(m.metadata.sequence.stream, json.loads(m.data)) for m in messages])
                for message in messages:
                    await message.ack()
        finally:
            pending.cancel()

    return run


# ------------------------------------------------------------------------------------ app


class Raw:
    """One role's ASGI app: its pool, NATS connection, relay and consumer."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.schema = f"raw_{role}"
        self.dsn: dict[str, Any] = json.loads(os.environ["BENCH_PG"])
        self.nats_url = os.environ["BENCH_NATS_URL"]
        self.stream = os.environ["BENCH_STREAM"]
        self.prefix = os.environ["BENCH_PREFIX"]
        self.batch = int(os.environ["BENCH_BATCH"])
        self.events = Events(self.prefix)
        self.pool: asyncpg.Pool | None = None
        self.nc: Client | None = None
        self.relay: Relay | None = None
        self.tasks: list[asyncio.Task[None]] = []

    # ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, parts = scope["method"], scope["path"].strip("/").split("/")
        if parts in (["healthz"], ["readyz"]):
            await respond(send, 200, {"status": "ok"})
            return
        try:
            status, body = await self.route(method, parts, receive)
        except Exception as exc:  # a bench harness: say what broke
            traceback.print_exc()
            status, body = 500, {"detail": repr(exc)}
        await respond(send, status, body)

    async def route(self, method: str, parts: list[str], receive: Receive) -> tuple[int, Event]:
        api = parts[:3] == ["api", "v1", "reports" if self.role == "intake" else "issues"]
        if self.role == "intake" and api and len(parts) == 3 and method == "POST":
            return await self.report(await read_json(receive))
        if self.role == "followup" and api and len(parts) == 5:
            issue_id, step = parts[3], parts[4]
            if method == "GET" and step == "case":
                return await self.case(issue_id)
            if method == "POST" and step in ("resolution", "lookback"):
                return await self.step(issue_id, step, await read_json(receive))
        if self.role == "projection" and api and len(parts) == 4 and method == "GET":
            return await self.issue(parts[3])
        return 404, {"detail": "not found"}

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    traceback.print_exc()
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        self.pool = pool = await asyncpg.create_pool(**self.dsn, min_size=4, max_size=16)
        await pool.execute(
            f"drop schema if exists {self.schema} cascade; create schema {self.schema};"
            + SCHEMAS[self.role]
            + OUTBOX.format(schema=self.schema)
        )
        self.nc = await nats.connect(self.nats_url)
        js = self.nc.jetstream()
        self.relay = Relay(pool, js, self.schema)
        self.spawn(self.relay.run())
        consumers = {
            "assignment": ([REPORTED], self.assign),
            "followup": ([REPORTED, ASSIGNED], self.follow),
            "projection": ([">"], self.project),
        }
        if self.role in consumers:
            shorts, apply = consumers[self.role]
            subjects = [f"{self.prefix}.{s}" for s in shorts]
            durable = f"raw-{self.role}"
            self.spawn((await consume(js, self.stream, durable, subjects, self.batch, apply))())

    def spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except BaseException:
                traceback.print_exc()
                os.kill(os.getpid(), signal.SIGTERM)  # a broken loop: stop, the bench says why

        self.tasks.append(asyncio.create_task(guarded()))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self.pool is not None:
            await self.pool.close()

    async def commit(
        self, conn: asyncpg.Connection, events: list[tuple[str, str, str]]
    ) -> list[tuple[int, str, str, str]]:
        return await insert_outbox(conn, self.schema, events)

    # intake

    async def report(self, report: Event) -> tuple[int, Event]:
        assert self.pool is not None and self.relay is not None
        now = datetime.now(UTC)
        issue_id, reporter_ref = str(ULID()), f"rpt_{ULID()}"
        reporter = report.get("reporter") or {}
        data = reported_data(report, reporter_ref)
        event = self.events.make(REPORTED, issue_id, report["source"], data, None)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "insert into raw_intake.reporter_contacts values ($1, $2, $3, $4)",
                reporter_ref,
                reporter.get("name"),
                reporter.get("phone"),
                now,
            )
            await conn.execute(
                "insert into raw_intake.reports (issue_id, event_id, title, description,"
                " category, village, source, reporter_ref, address, lat, lon, received_at)"
                " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                issue_id,
                event[0],
                *data.values(),
                now,
            )
            rows = await self.commit(conn, [event])
        self.relay.committed(rows)
        return 201, {"issue_id": issue_id, "event_id": event[0]}

    # assignment

    async def assign(self, batch: list[tuple[int, Event]]) -> None:
        assert self.pool is not None and self.relay is not None
        today, now = date.today(), datetime.now(UTC)
        deadline = today + timedelta(days=7)
        issues, units, events = [], [], []
        for _, reported in batch:
            data = reported["data"]
            unit = ROUTES.get(data["category"]) or f"{data['village']}_branch"
            assigned = {
                "unit": unit,
                "responsible_person_id": f"secretary-{data['village']}",
                "deadline": deadline.isoformat(),
                "reason": f"routed on report: category {data['category']} -> {unit}",
                "category": data["category"],
                "village": data["village"],
            }
            issues.append(reported["subject"])
            units.append(unit)
            events.append(
                self.events.make(ASSIGNED, reported["subject"], "assignment", assigned, reported)
            )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "insert into raw_assignment.assignments"
                " (issue_id, assignment_no, unit, deadline, event_id, assigned_at)"
                " select i, 1, u, $3, e, $4 from unnest($1::text[], $2::text[], $5::text[])"
                " as t(i, u, e)",
                issues,
                units,
                deadline,
                now,
                [e[0] for e in events],
            )
            rows = await self.commit(conn, events)
        self.relay.committed(rows)

    # followup

    async def follow(self, batch: list[tuple[int, Event]]) -> None:
        assert self.pool is not None
        cases: dict[str, tuple[str, str | None, str | None, str | None]] = {}
        for _, event in batch:
            short, data = event["type"].removeprefix("minqing."), event["data"]
            _, unit, village, category = cases.get(event["subject"], ("", None, None, None))
            cases[event["subject"]] = (
                STATUS_AFTER[short],
                data.get("unit") or unit,
                data.get("village") or village,
                data.get("category") or category,
            )
        ids = list(cases)
        status, units, villages, categories = (list(c) for c in zip(*cases.values(), strict=True))
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "insert into raw_followup.cases as c"
                " (issue_id, status, unit, village, category, updated_at)"
                " select *, now() from unnest($1::text[], $2::text[], $3::text[], $4::text[],"
                " $5::text[]) on conflict (issue_id) do update set status = excluded.status,"
                " unit = coalesce(excluded.unit, c.unit), updated_at = excluded.updated_at",
                ids,
                status,
                units,
                villages,
                categories,
            )

    async def case(self, issue_id: str) -> tuple[int, Event]:
        assert self.pool is not None
        row = await self.pool.fetchrow(
            "select issue_id, status, unit, village, category from raw_followup.cases"
            " where issue_id = $1",
            issue_id,
        )
        if row is None:
            return 404, {"detail": f"no case {issue_id}"}
        return 200, dict(row)

    async def step(self, issue_id: str, step: str, body: Event) -> tuple[int, Event]:
        assert self.pool is not None and self.relay is not None
        before, after, short = (
            ("assigned", "resolved", RESOLVED)
            if step == "resolution"
            else ("resolved", "closed", PASSED)
        )
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "update raw_followup.cases set status = $3, updated_at = now()"
                " where issue_id = $1 and status = $2 returning unit",
                issue_id,
                before,
                after,
            )
            if row is None:
                return 409, {"detail": f"the case is not {before}"}
            if step == "resolution":
                data = {"unit": row["unit"], "summary": body["summary"]}
                data["resolved_by"] = body["resolved_by"]
                actor = body["resolved_by"]
            else:
                data = {"visitor": body["visitor"], "notes": body["notes"]}
                actor = body["visitor"]
            event = self.events.make(short, issue_id, actor, data, None)
            rows = await self.commit(conn, [event])
        self.relay.committed(rows)
        return 201, {"issue_id": issue_id, "event_id": event[0]}

    # projection

    async def project(self, batch: list[tuple[int, Event]]) -> None:
        assert self.pool is not None
        issues: dict[str, list[Any]] = {}
        for position, event in batch:
            short, data = event["type"].removeprefix("minqing."), event["data"]
            row = issues.setdefault(event["subject"], [None] * 8)
            row[0] = STATUS_AFTER.get(short, row[0] or "reported")
            for i, key in enumerate(("title", "category", "village", "source", "unit"), 1):
                row[i] = data.get(key) or row[i]
            if short == REPORTED:
                row[6] = datetime.fromisoformat(event["time"])
            row[7] = position
        columns = list(zip(*issues.values(), strict=True))
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "insert into raw_projection.issues as i (issue_id, status, title, category,"
                " village, source, unit, reported_at, position, updated_at)"
                " select *, now() from unnest($1::text[], $2::text[], $3::text[], $4::text[],"
                " $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::bigint[])"
                " on conflict (issue_id) do update set status = excluded.status,"
                " title = coalesce(excluded.title, i.title),"
                " unit = coalesce(excluded.unit, i.unit),"
                " position = excluded.position, updated_at = excluded.updated_at",
                list(issues),
                *(list(c) for c in columns),
            )

    async def issue(self, issue_id: str) -> tuple[int, Event]:
        assert self.pool is not None
        row = await self.pool.fetchrow(
            "select issue_id, status, title, category, village, source, unit, reported_at,"
            " position from raw_projection.issues where issue_id = $1",
            issue_id,
        )
        if row is None:
            return 404, {"detail": f"no matter {issue_id}"}
        body = dict(row)
        body["reported_at"] = body["reported_at"] and body["reported_at"].isoformat()
        return 200, body


async def read_json(receive: Receive) -> Event:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    parsed: Event = json.loads(body)
    return parsed


async def respond(send: Send, status: int, body: Event) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in ROLES:
        raise SystemExit(f"usage: python -m bench.raw_loop {{{','.join(ROLES)}}} PORT")
    role, port = argv[0], int(argv[1])
    uvicorn.run(Raw(role), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
