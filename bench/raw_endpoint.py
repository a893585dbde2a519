"""The raw limit for intake: a minimal uvicorn + asyncpg ``POST /api/v1/reports``.

Run as its own process (``python -m bench.raw_endpoint PORT``) with the same uvicorn settings
as a service (one process, ``uvicorn.run`` defaults, log level warning). Per request it does
intake's writes in one transaction: the reporter's contact row, the report row, and an outbox
row holding the event's JSON; it answers ``201 {issue_id, event_id}``. No validation beyond
reading the JSON, no relay.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import uvicorn
from ulid import ULID

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SCHEMA = """
create schema if not exists bench_raw;
create table if not exists bench_raw.reports (
    issue_id text primary key, event_id text not null unique, title text not null,
    description text not null, category text not null, village text not null,
    source text not null, reporter_ref text, address text, lat double precision,
    lon double precision, received_at timestamptz not null, idempotency_key text unique,
    request_hash text
);
create table if not exists bench_raw.reporter_contacts (
    reporter_ref text primary key, name text, phone text, created_at timestamptz not null
);
create table if not exists bench_raw.outbox (
    id bigserial primary key, event_id text not null unique, subject text not null,
    payload text not null, created_at timestamptz not null default now(),
    published_at timestamptz, stream_seq bigint
);
create index if not exists outbox_unpublished on bench_raw.outbox (id)
    where published_at is null;
"""
SUBJECT = "minqing.events.issue.reported"


class App:
    def __init__(self, dsn: dict[str, Any]) -> None:
        self.dsn = dsn
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["method"] == "POST" and scope["path"] == "/api/v1/reports":
            await self.report(receive, send)
        elif scope["path"] in ("/healthz", "/readyz"):
            await respond(send, 200, {"status": "ok"})
        else:
            await respond(send, 404, {"detail": "not found"})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await asyncpg.create_pool(**self.dsn, min_size=5, max_size=15)
                await self.pool.execute(SCHEMA)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def report(self, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        report = json.loads(body)
        now = datetime.now(UTC)
        issue_id, event_id, reporter_ref = str(ULID()), str(ULID()), f"rpt_{ULID()}"
        reporter = report.get("reporter") or {}
        data = reported_data(report, reporter_ref)
        event = {
            "specversion": "1.0",
            "id": event_id,
            "source": "/minqing/intake",
            "type": "minqing.issue.reported",
            "subject": issue_id,
            "time": now.isoformat(),
            "datacontenttype": "application/json",
            "data": data,
            "dataversion": 1,
            "correlationid": event_id,
            "actor": report["source"],
        }
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "insert into bench_raw.reporter_contacts values ($1, $2, $3, $4)",
                reporter_ref,
                reporter.get("name"),
                reporter.get("phone"),
                now,
            )
            await conn.execute(
                "insert into bench_raw.reports (issue_id, event_id, title, description,"
                " category, village, source, reporter_ref, address, lat, lon, received_at)"
                " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                issue_id,
                event_id,
                *data.values(),
                now,
            )
            await conn.execute(
                "insert into bench_raw.outbox (event_id, subject, payload) values ($1, $2, $3)",
                event_id,
                SUBJECT,
                json.dumps(event),
            )
        await respond(send, 201, {"issue_id": issue_id, "event_id": event_id})


def reported_data(report: dict[str, Any], reporter_ref: str) -> dict[str, Any]:
    """The ``issue.reported`` data of a report body (README "Try the loop")."""
    location = report.get("location") or {}
    return {
        "title": report["title"],
        "description": report["description"],
        "category": report["category"],
        "village": report["village"],
        "source": report["source"],
        "reporter_ref": reporter_ref,
        "address": location.get("address"),
        "lat": location.get("lat"),
        "lon": location.get("lon"),
    }


async def respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    app = App(json.loads(os.environ["BENCH_PG"]))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
