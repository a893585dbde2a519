"""The read side at scale (issue 8 §5): what supervisors query, with N matters loaded.

The projection service runs as a real process against the kept dataset (bench/dataset.py);
each query is sent sequentially over HTTP (httpx) as a supervisor (a bearer token enrolled
in the dataset's database for this run), warmed up first, and timed: p50 and p99.
Beside each, the raw limit of the stack for the same work: the very SQL statements the API
issues for it (captured with a ``before_cursor_execute`` listener while the same query
functions run in this process), executed directly with asyncpg, timed likewise.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from bench import dataset
from bench.identity import Callers, check
from bench.report import Row
from bench.stack import (
    SETTINGS,
    UNTHROTTLED,
    Process,
    Stack,
    asyncpg_dsn,
    free_port,
    wait_ready,
)
from minqing.services.projection import stats
from minqing.services.projection.views import history, issues
from minqing.services.projection.views.issues.fold import IssueView
from minqing.shared.domain.clock import local_date
from minqing.shared.embedded import EmbeddedPostgres
from minqing.shared.persistence.db import make_engine, make_sessions

REQUESTS = 200  # timed per query, each side (fewer if the time budget runs out first)
WARMUP = 20  # requests, or WARMUP_SECONDS if that is shorter
WARMUP_SECONDS = 5.0
BUDGET_SECONDS = 45.0  # per query and side, once MIN_REQUESTS are timed
MIN_REQUESTS = 10
HISTORY_MATTERS = 200
# Free text: words of the generated vocabulary, 2-4 characters.
WORDS = (
    "路灯",
    "桥梁",
    "排水沟",
    "垃圾清运",
    "水管爆裂",
    "积水",
    "宅基地",
    "病虫害",
    "卫生室",
    "噪音",
)
VILLAGE = "sanqi"
AS_OF_BACK = timedelta(days=30)

Query = Callable[[AsyncSession], Awaitable[Any]]


@dataclass
class Variant:
    """One request: its path and query parameters, and the same work in process."""

    path: str
    params: dict[str, str]
    run: Query
    statements: list[tuple[str, Sequence[Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    figure: str
    target_ms: float
    variants: list[Variant]


@dataclass(frozen=True)
class Timing:
    p50: float
    p99: float
    count: int
    failed: int = 0
    first_error: str = ""


def timing(samples: list[float], errors: list[str]) -> Timing:
    """Percentiles over every request, failed ones included (they took their time too)."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    first = errors[0] if errors else ""
    return Timing(statistics.median(ordered), p99, len(ordered), len(errors), first)


# ---------------------------------------------------------------------------------- cases


def _list(f: issues.IssueFilter, cursor: str | None = None) -> Query:
    cap = SETTINGS.list_count_limit  # as the API counts
    return lambda s: issues.list_issues(s, f, limit=50, sort="newest", cursor=cursor, count=cap)


def _stats(f: issues.IssueFilter, params: dict[str, str]) -> Query:
    day = local_date(f.as_of or datetime.now(UTC), SETTINGS.timezone)
    return lambda s: stats.statistics(s, f, dict(params), day, SETTINGS.timezone)


async def cases(conn: asyncpg.Connection, matters: int, now: datetime, label: str) -> list[Case]:
    """The queries, with their inputs drawn from the dataset."""
    ids = [
        r["issue_id"]
        for r in await conn.fetch(
            "select issue_id from projection.issues order by random() limit $1", HISTORY_MATTERS
        )
    ]
    rng = random.Random(dataset.SEED)
    rng.shuffle(ids)
    deep_row = matters // 2
    deep_id = await conn.fetchval(
        "select issue_id from projection.issues order by issue_id desc offset $1 limit 1",
        deep_row,
    )
    deep = issues.encode_cursor("newest", IssueView(issue_id=deep_id))
    as_of = now - AS_OF_BACK
    when = as_of.isoformat()
    chosen = {"village": VILLAGE, "status": "assigned"}
    chosen_f = issues.IssueFilter(village=VILLAGE, status="assigned")
    then_f = issues.IssueFilter(village=VILLAGE, status="assigned", as_of=as_of)
    whole_then = issues.IssueFilter(as_of=as_of)
    return [
        Case(
            f"history p99 ({label})",
            20,
            [
                Variant(f"/api/v1/issues/{i}/history", {}, lambda s, i=i: history.trail(s, i))
                for i in ids
            ],
        ),
        Case(
            f"list page, village+status, p99 ({label})",
            50,
            [Variant("/api/v1/issues", chosen, _list(chosen_f))],
        ),
        Case(
            f"list deep page (row {deep_row:,}, keyset) p99 ({label})",
            50,
            [Variant("/api/v1/issues", {"cursor": deep}, _list(issues.IssueFilter(), deep))],
        ),
        Case(
            f"free text q= p99 ({label})",
            100,
            [Variant("/api/v1/issues", {"q": w}, _list(issues.IssueFilter(text=w))) for w in WORDS],
        ),
        Case(
            f"statistics, whole town, p99 ({label})",
            200,
            [Variant("/api/v1/stats", {}, _stats(issues.IssueFilter(), {}))],
        ),
        Case(
            f"statistics, one village, p99 ({label})",
            200,
            [
                Variant(
                    "/api/v1/stats",
                    {"village": VILLAGE},
                    _stats(issues.IssueFilter(village=VILLAGE), {"village": VILLAGE}),
                )
            ],
        ),
        Case(
            f"list page as_of a month back p99 ({label})",
            500,
            [Variant("/api/v1/issues", {**chosen, "as_of": when}, _list(then_f))],
        ),
        Case(
            f"statistics as_of a month back p99 ({label})",
            500,
            [Variant("/api/v1/stats", {"as_of": when}, _stats(whole_then, {"as_of": when}))],
        ),
    ]


async def capture(database_url: str, all_cases: list[Case]) -> None:
    """Run every variant's query functions in process and keep the SQL they issue."""
    engine = make_engine(database_url, SETTINGS.model_copy(update={"database_url": database_url}))
    sink: list[tuple[str, Sequence[Any]]] = []

    def grab(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _m: bool) -> None:
        sink.append((statement, tuple(parameters or ())))

    event.listen(engine.sync_engine, "before_cursor_execute", grab)
    sessions = make_sessions(engine)
    try:
        for case in all_cases:
            for variant in case.variants:
                sink.clear()
                async with sessions() as session:
                    await variant.run(session)
                variant.statements = list(sink)
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------------ measuring


async def _timed(
    once: Callable[[Variant], Awaitable[str | None]], variants: list[Variant], requests: int
) -> Timing:
    """Warm up, then time ``requests`` sequential calls (fewer past the time budget); a
    call returns an error text or None."""
    warm_until = time.monotonic() + WARMUP_SECONDS
    for n in range(WARMUP):
        await once(variants[n % len(variants)])
        if time.monotonic() > warm_until:
            break
    samples: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    for n in range(requests):
        variant = variants[n % len(variants)]
        began = time.perf_counter()
        error = await once(variant)
        samples.append(time.perf_counter() - began)
        if error is not None:
            errors.append(error)
        if n + 1 >= MIN_REQUESTS and time.monotonic() > deadline:
            break
    return timing(samples, errors)


async def over_http(client: httpx.AsyncClient, case: Case, requests: int) -> Timing:
    async def once(variant: Variant) -> str | None:
        try:
            response = await client.get(variant.path, params=variant.params)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        check(response.status_code, f"GET {variant.path}", response.text)
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:120]}"
        return None

    return await _timed(once, case.variants, requests)


async def raw(
    conn: asyncpg.Connection, case: Case, requests: int, parts: dict[str, list[float]]
) -> Timing:
    """The case's statements run directly; ``parts`` gets each statement's own times."""

    async def once(variant: Variant) -> str | None:
        for statement, parameters in variant.statements:
            began = time.perf_counter()
            await conn.fetch(statement, *parameters)
            parts.setdefault(_gist(statement), []).append(time.perf_counter() - began)
        return None

    return await _timed(once, case.variants, requests)


def _gist(statement: str) -> str:
    """A statement in a few words: what it selects and from where."""
    words = " ".join(statement.split())
    head = words[7:45] if words.upper().startswith("SELECT") else words[:38]
    source = words.rsplit(" FROM ", 1)[-1][:28] if " FROM " in words else ""
    return f"{head}… FROM {source}"


def breakdown(parts: dict[str, list[float]]) -> str:
    """Each statement's median, for the log: which one the time goes to."""
    return "; ".join(f"{ms(statistics.median(t))} {name}" for name, t in parts.items())


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 0.01 else f"{seconds * 1000:,.0f} ms"


def row(case: Case, api: Timing, base: Timing) -> Row:
    target = case.target_ms / 1000
    failed = f", {api.failed} failed: {api.first_error[:60]}" if api.failed else ""
    return Row(
        case.figure,
        f"≤ {case.target_ms:.0f} ms",
        f"{ms(api.p99)} (p50 {ms(api.p50)}, n={api.count}{failed})",
        f"{ms(base.p99)} (p50 {ms(base.p50)})",
        f"{api.p99 / base.p99:.1f}×" if base.p99 > 0 else "—",
        api.p99 <= target and not api.failed,
    )


def label(matters: int) -> str:
    return (
        f"{matters // 1_000_000}M matters" if matters % 1_000_000 == 0 else f"{matters:,} matters"
    )


def start_projection(stack: Stack, database_url: str) -> Process:
    """``serve projection`` on the dataset (its consumers find an empty stream)."""
    port = free_port()
    env = {
        "MINQING_NATS_URL": stack.nats_url,
        "MINQING_DATABASE_URL": database_url,
        "MINQING_HOST": "127.0.0.1",
        "MINQING_PROJECTION_PORT": str(port),
        **UNTHROTTLED,
    }
    argv = [
        sys.executable,
        "-m",
        "minqing",
        "serve",
        "projection",
        "--log-level",
        "warning",
    ]
    return stack.start_process("projection-reads", argv, env, port)


async def measure(
    stack: Stack,
    callers: Callers,
    matters: int,
    requests: int = REQUESTS,
    data_dir: Path | None = None,
) -> list[Row]:
    """Ensure the dataset, enrol ``callers`` in it, start the projection on it, time every
    query both ways (over HTTP as ``callers.supervisor``)."""
    data_dir = data_dir or dataset.data_dir(matters)
    server = EmbeddedPostgres(data_dir / "postgres", database="postgres").start()
    try:
        marker = await dataset.ensure(server.url(), data_dir, matters)
        url = dataset.database_url(server.url())
        # A kept dataset may predate later migrations of other schemas (identity's):
        # migrate is a no-op when all is at head.
        dataset.migrate(url, data_dir / "migrate.log")
        await callers.enrol(url)
        now = datetime.fromisoformat(marker.now)
        conn = await asyncpg.connect(**asyncpg_dsn(url))
        try:
            all_cases = await cases(conn, matters, now, label(matters))
            await capture(url, all_cases)
            process = start_projection(stack, url)
            try:
                await wait_ready(process)
                rows = []
                async with httpx.AsyncClient(
                    base_url=process.base_url, timeout=30, headers=callers.supervisor
                ) as client:
                    for case in all_cases:
                        api = await over_http(client, case, requests)
                        parts: dict[str, list[float]] = {}
                        base = await raw(conn, case, requests, parts)
                        rows.append(row(case, api, base))
                        print(f"  {rows[-1].figure}: {rows[-1].measured}; raw {rows[-1].raw}")
                        print(f"    raw p50 by statement: {breakdown(parts)}", flush=True)
                return rows
            finally:
                stack.stop(process)
        finally:
            await conn.close()
    finally:
        server.stop()


def targets(matters: int) -> list[tuple[str, str]]:
    """The figures and targets (for FAILED rows if the group cannot run)."""
    kinds = (
        ("history", "≤ 20 ms"),
        ("list page and deep page", "≤ 50 ms"),
        ("free text", "≤ 100 ms"),
        ("statistics", "≤ 200 ms"),
        ("list and statistics as_of", "≤ 500 ms"),
    )
    return [(f"{name} p99 ({label(matters)})", target) for name, target in kinds]


# ------------------------------------------------------------------------------- profiling


async def explain(matters: int, only: str | None = None) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each query's statements on the kept dataset (it must
    exist: run the reads group once first)."""
    kept = dataset.data_dir(matters)
    marker = dataset.read_marker(kept)
    if marker is None:
        raise SystemExit(f"no dataset of {matters:,} matters in {kept}")
    server = EmbeddedPostgres(kept / "postgres", database="postgres").start()
    try:
        url = dataset.database_url(server.url())
        conn = await asyncpg.connect(**asyncpg_dsn(url))
        try:
            all_cases = await cases(conn, matters, datetime.fromisoformat(marker.now), "")
            all_cases = [c for c in all_cases if only is None or only in c.figure]
            await capture(url, all_cases)
            for case in all_cases:
                print(f"\n===== {case.figure}")
                for statement, parameters in case.variants[0].statements:
                    plan = await conn.fetch(f"explain (analyze, buffers) {statement}", *parameters)
                    print(statement[:3000], "\n--", parameters[:8])
                    print("\n".join(r[0] for r in plan))
        finally:
            await conn.close()
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(prog="python -m bench.reads", description=explain.__doc__)
    parser.add_argument("--matters", type=int, default=dataset.DEFAULT_MATTERS)
    parser.add_argument("--only", help="only the queries whose figure contains this text")
    args = parser.parse_args(argv)
    asyncio.run(explain(args.matters, args.only))


if __name__ == "__main__":
    main()
