"""`GET /metrics` on every service: what the consumers applied and how long their batches
took, what the relay published, HTTP requests by route template and status, consumer lag,
the outbox's backlog and the age of its oldest row, dead letters and the database pool."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from datetime import timedelta

from sqlalchemy import func, insert, select

from minqing.services.assignment.app import create_app as create_assignment
from minqing.services.intake.app import create_app as create_intake
from minqing.services.intake.store import plumbing
from minqing.shared.persistence.db import make_engine, make_sessions
from minqing.shared.service.metrics import scrape
from minqing.shared.service.settings import Settings
from tests.support.harness import eventually, serve

REPORT = {
    "title": "Street lights out on Shiguan Road",
    "description": "Six lamps between the school and the market are dark.",
    "category": "street_lights",
    "village": "shihu",
    "source": "grid_center",
}


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the exposition text, None if it is not there."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$" if wanted else None
    for line in text.splitlines():
        if pattern is None and line.startswith(f"{name} "):
            return float(line.split()[1])
        if pattern is not None and (found := re.match(pattern, line)):
            return float(found.group(1))
    return None


async def test_every_service_counts_what_it_consumed_published_and_answered(
    settings: Settings,
) -> None:
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serve(create_intake(settings)))
        assignment = await stack.enter_async_context(serve(create_assignment(settings)))
        created = await intake.post("/api/v1/reports", json=REPORT)
        assert created.status_code == 201, created.text
        issue_id = created.json()["issue_id"]
        assert (await intake.get("/api/v1/no-such-thing")).status_code == 404

        async def assigned() -> int:
            return (await assignment.get(f"/api/v1/issues/{issue_id}/assignment")).status_code

        await eventually(assigned, lambda code: code == 200)
        on_intake = (await intake.get("/metrics", headers={})).text  # no credentials needed

        async def on_assignment() -> str:
            return (await assignment.get("/metrics", headers={})).text

        seen = await eventually(
            on_assignment,
            lambda text: (
                sample(text, "minqing_messages_published_total", type="issue.assigned") == 1.0
            ),
        )

    consumed = {"consumer": "assignment", "type": "issue.reported"}
    assert sample(seen, "minqing_events_consumed_total", **consumed) == 1.0
    batches = sample(seen, "minqing_consumer_batch_seconds_count", consumer="assignment")
    assert batches is not None and batches >= 1
    assert sample(seen, "minqing_consumer_pending", consumer="assignment") is not None
    assert sample(on_intake, "minqing_messages_published_total", type="issue.reported") == 1.0
    posted = {"method": "POST", "route": "/api/v1/reports", "status": "201"}
    assert sample(on_intake, "minqing_http_request_seconds_count", **posted) == 1.0
    unknown = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample(on_intake, "minqing_http_request_seconds_count", **unknown) == 1.0
    assert f"/api/v1/issues/{issue_id}" not in seen  # route templates, never paths
    assert sample(on_intake, "minqing_outbox_unsent") == 0.0
    assert sample(on_intake, "minqing_outbox_oldest_unsent_seconds") == 0.0
    size = sample(on_intake, "minqing_db_pool_connections", state="size")
    assert size is not None and size >= 1
    # intake's ingress counters are served beside the service's own
    assert "# HELP minqing_ingress_accepted_total " in on_intake


async def test_the_outbox_backlog_and_its_oldest_row_are_read_when_scraped(
    settings: Settings,
) -> None:
    engine = make_engine(settings.database_url, settings)
    sessions = make_sessions(engine)
    try:
        async with sessions() as session, session.begin():
            now = await session.scalar(select(func.now()))
            assert now is not None
            for n, age in enumerate((120, 30)):
                row = {
                    "event_id": f"event-{n}",
                    "subject": "minqing.events.issue.reported",
                    "payload": "{}",
                    "created_at": now - timedelta(seconds=age),
                }
                await session.execute(insert(plumbing.outbox).values(row))
            dead = {
                "consumer": "intake-ingress",
                "status": "dead",
                "stream": "MINQING_INGRESS",
                "stream_epoch": 1,
                "stream_seq": 3,
                "subject": "minqing.ingress.x.report",
                "deliveries": 1,
                "reason": "unreadable",
                "headers": {},
                "raw": b"{",
            }
            await session.execute(insert(plumbing.dead_letters).values(dead))
        scraped = await scrape(sessions, plumbing, engine.pool, {"intake-ingress": 4})
    finally:
        await engine.dispose()
    assert scraped.unsent == 2
    assert scraped.oldest_unsent is not None and scraped.now is not None
    age = (scraped.now - scraped.oldest_unsent).total_seconds()
    assert 120 <= age < 180
    assert scraped.dead_letters == [("intake-ingress", "dead", 1)]
    assert scraped.pending == {"intake-ingress": 4}
