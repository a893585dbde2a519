"""``python -m bench``: measure, print the table, and optionally write it into the docs
(docs/developer/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from nats.aio.client import Client

from bench import catchup, events, http_load, reads, relay
from bench.cpu import LOAD_GENERATOR, CpuMeter, CpuPerLoop
from bench.identity import Callers, Refused
from bench.report import Row, percent, rate, text_table, write_readme
from bench.stack import (
    REPO,
    SETTINGS,
    Failed,
    Process,
    Stack,
    asyncpg_dsn,
    connect,
    free_port,
    fresh_stream,
    wait_ready,
)

CATCHUP = ("projection", "followup", "assignment")  # assignment last: it publishes assignments
FIGURES = (*CATCHUP, "relay", "intake", "loops", "visible", "reads")
SERVICES = ("intake", "assignment", "followup", "projection")
CLIENTS = (16, 64)
VISIBLE_RATE = 50.0
RSS_LIMIT_MB = 150.0
# Issue 18's targets for the closed loop, each beside the raw loop of the same run.
LOOPS_MIN, LOOPS_SHARE_OF_RAW = 60.0, 0.33
CPU_MAX_MS, CPU_MAX_TIMES_RAW = 35.0, 3.0
RAW_LOOP_DATABASE = "raw_loop"


@dataclass(frozen=True)
class Sizes:
    events: int
    relay_rows: int
    http_seconds: float
    warmup_seconds: float
    visible_seconds: float
    matters: int  # the read side's dataset (kept under .bench-data/reads/<N>)
    read_requests: int
    # A closed loop takes seconds on a loaded machine: its warm-up must outlast one loop,
    # or the window opens before the first loops end.
    loop_seconds: float
    loop_warmup_seconds: float


FULL = Sizes(500_000, 20_000, 10.0, 2.0, 20.0, 1_000_000, reads.REQUESTS, 10.0, 2.0)
QUICK = Sizes(10_000, 2_000, 3.0, 0.5, 5.0, 20_000, 50, 5.0, 2.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Minqing's throughput and latency beside the raw limits of its stack, "
        "measured in the same run on this machine. Never run two load tests at once.",
    )
    parser.add_argument("--events", type=int, help="catch-up backlog size (default 500,000)")
    parser.add_argument("--relay-rows", type=int, help="outbox rows to drain (default 20,000)")
    parser.add_argument(
        "--matters",
        type=int,
        help="matters loaded for the read side (default 1,000,000; generated once, then kept)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and short runs, to check the harness"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="FIGURE",
        choices=(*FIGURES, "catchup"),
        help=f"measure only these: {', '.join(FIGURES)}, or catchup (the three services)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="record each catch-up with py-spy (flame graphs)"
    )
    parser.add_argument(
        "--write-readme",
        action="store_true",
        help="replace the table between the bench markers in docs/developer/benchmarks.md",
    )
    args = parser.parse_args(argv)
    if args.write_readme and args.quick:
        parser.error("--write-readme needs full sizes: drop --quick")
    return args


def selected(args: argparse.Namespace) -> list[str]:
    if not args.only:
        return list(FIGURES)
    wanted = set(args.only) | (set(CATCHUP) if "catchup" in args.only else set())
    return [f for f in FIGURES if f in wanted]


def reason_of(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__


def failed_row(figure: str, target: str, exc: BaseException) -> Row:
    return Row(figure, target, f"FAILED: {reason_of(exc)}", met=False)


@dataclass(frozen=True)
class LoopRun:
    """One closed-loop load: loops/s and latency, and the CPU each process spent per loop."""

    loops: http_load.Loops
    cpu: CpuPerLoop
    idle_cores: float  # the servers' CPU while no load ran, in cores (seconds per second)


def loops_target(clients: int) -> str:
    later = f", ≥ {CLIENTS[0]}-client figure" if clients > CLIENTS[0] else ""
    return f"≥ {LOOPS_MIN:.0f}/s, ≥ {LOOPS_SHARE_OF_RAW:.0%} of raw{later}"


CPU_TARGET = f"≤ {CPU_MAX_MS:.0f} ms and ≤ {CPU_MAX_TIMES_RAW:.0f}× raw (servers)"


class Bench:
    def __init__(self, stack: Stack, nc: Client, sizes: Sizes, args: argparse.Namespace) -> None:
        self.stack, self.nc, self.sizes, self.args = stack, nc, sizes, args
        self.rows: list[Row] = []
        # Who the HTTP load acts as: enrolled in each database before the services start.
        self.callers = Callers.made()
        self.services: dict[str, Process] = {}  # the four services while ``system`` runs

    async def guarded(
        self, label: str, targets: list[tuple[str, str]], step: Awaitable[None]
    ) -> None:
        """Run one group; if it fails, its rows say FAILED with the reason and the run goes on.
        A request the guard refused (401/403) ends the run: the bench's callers are wrong."""
        print(f"\n== {label}", flush=True)
        try:
            await step
        except Refused:
            raise
        except Exception as exc:
            traceback.print_exc()
            self.rows += [failed_row(figure, target, exc) for figure, target in targets]

    # ------------------------------------------------------------------------ catch-up

    async def catch_up(self, services: list[str]) -> None:
        database = self.stack.database("catchup")
        await fresh_stream(self.nc)
        total = events.backlog_size(self.sizes.events)
        print(f"  publishing {total:,} canonical events (publish_async, Nats-Msg-Id)", flush=True)
        progress = events.Progress("published", total)
        counts = await events.publish_all(self.nc, events.backlog(self.sizes.events), progress)
        print("  raw loop (nats-py + asyncpg, projection's inserts)", flush=True)
        raw = await catchup.raw(self.stack, self.nc, database, counts)
        print(f"  raw loop: {raw.events:,} events in {raw.seconds:.1f}s", flush=True)
        if "projection" in services:
            await self.projection_catch_up(database, counts, raw)
        for service in [s for s in services if s != "projection"]:
            print(f"  {service}: catching up", flush=True)
            target = catchup_target(service)
            try:
                result = await catchup.service(
                    self.stack,
                    self.nc,
                    service,
                    database,
                    counts,
                    with_profile=self.args.profile,
                )
            except Exception as exc:
                traceback.print_exc()
                self.rows.append(failed_row(f"{service} catch-up", target, exc))
                continue
            print(f"  {service}: {result.events:,} events in {result.seconds:.1f}s", flush=True)
            self.rows.append(catchup_row(service, target, result, raw))

    async def projection_catch_up(
        self, database: str, counts: Counter[str], raw: catchup.CatchUp
    ) -> None:
        """The projection twice over the same backlog, each on a fresh database: with one
        read model (the list), then with every read model and the audit chain, one process
        per read model (MINQING_PROJECTION_VIEWS), as a deployment on two cores runs it."""
        single_target = "reference for the next row"
        target = "≥ 8,000/s and ≥ 70% of one read model"
        runs = (
            ("one read model (issues)", "catchup-issues", ["issues"], single_target),
            ("every read model + hash chain", database, ["history", "issues"], target),
        )
        single: catchup.CatchUp | None = None
        for label, name, views, goal in runs:
            print(f"  projection, {label}: catching up", flush=True)
            url = database if name == database else self.stack.database(name)
            try:
                result = await catchup.service(
                    self.stack,
                    self.nc,
                    "projection",
                    url,
                    counts,
                    with_profile=self.args.profile,
                    views=views,
                )
            except Exception as exc:
                traceback.print_exc()
                self.rows.append(failed_row(f"projection catch-up, {label}", goal, exc))
                continue
            finally:
                await catchup.forget_durables(self.nc, "projection")
            print(f"  projection: {result.events:,} events in {result.seconds:.1f}s", flush=True)
            measured = rate(result.per_second) + f" ({result.events:,} events)"
            if single is None:
                single, met = result, None
            else:
                share = result.per_second / single.per_second
                measured += f", {share:.0%} of one read model"
                met = result.per_second >= 8_000 and share >= 0.7
            if result.dead_letters:
                measured += f", {result.dead_letters:,} dead letters!"
                met = False
            self.rows.append(
                Row(
                    f"projection catch-up, {label}",
                    goal,
                    measured,
                    rate(raw.per_second),
                    percent(result.per_second, raw.per_second),
                    met,
                )
            )
        await self.guarded(
            "projection rebuild",
            [("projection rebuild, one read model (issues)", "reported")],
            self.rebuild(database, raw),
        )

    async def rebuild(self, database: str, raw: catchup.CatchUp) -> None:
        """``minqing projection rebuild issues`` on the caught-up database: the whole stream
        replayed into fresh tables and swapped in."""
        env = {"MINQING_NATS_URL": self.stack.nats_url, "MINQING_DATABASE_URL": database}
        argv = [sys.executable, "-m", "minqing", "projection", "rebuild", "issues"]
        started = time.monotonic()
        process = self.stack.start_process("rebuild", argv, env)
        code = await asyncio.to_thread(process.popen.wait)
        seconds = time.monotonic() - started
        if code != 0:
            raise Failed(f"rebuild exited with {code}:\n{process.log_tail()}")
        events = raw.events
        print(f"  rebuild (issues): {events:,} events in {seconds:.1f}s", flush=True)
        self.rows.append(
            Row(
                "projection rebuild, one read model (issues)",
                "reported",
                f"{seconds:,.0f} s for {events:,} events ({rate(events / seconds)})",
                rate(raw.per_second),
                percent(events / seconds, raw.per_second),
            )
        )

    # --------------------------------------------------------------------------- relay

    async def relay(self) -> None:
        database = self.stack.database("relay")
        messages = events.reports(self.sizes.relay_rows)
        raw_seconds = await relay.raw(self.nc, messages)
        print(f"  raw publish_async: {len(messages):,} in {raw_seconds:.2f}s", flush=True)
        seconds = await relay.service(self.stack, self.nc, database, messages)
        print(f"  intake relay: {len(messages):,} in {seconds:.2f}s", flush=True)
        measured, raw = len(messages) / seconds, len(messages) / raw_seconds
        self.rows.append(
            Row(
                f"relay drain ({len(messages):,} rows)",
                "≥ 70% of raw",
                rate(measured),
                rate(raw),
                percent(measured, raw),
                measured >= 0.7 * raw,
            )
        )

    # -------------------------------------------------------------------------- intake

    async def intake(self) -> None:
        database = self.stack.database("intake")
        await fresh_stream(self.nc, create=False)
        port = free_port()
        env = {"BENCH_PG": json_dsn(database)}
        argv = [sys.executable, "-m", "bench.raw_endpoint", str(port)]
        endpoint = self.stack.start_process("raw-endpoint", argv, env, port)
        raw: dict[int, http_load.Throughput] = {}
        try:
            await wait_ready(endpoint)
            for clients in CLIENTS:
                raw[clients] = await self.load_intake(endpoint, clients, "raw endpoint", None)
        finally:
            self.stack.stop(endpoint)
        await self.callers.enrol(database)
        service = self.stack.start_service("intake", database)
        try:
            await wait_ready(service)
            for clients in CLIENTS:
                measured = await self.load_intake(service, clients, "intake", self.callers.reporter)
                self.rows.append(
                    Row(
                        f"intake reports, {clients} clients",
                        "≥ 60% of raw",
                        rate(measured.per_second) + errors_note(measured.errors),
                        rate(raw[clients].per_second),
                        percent(measured.per_second, raw[clients].per_second),
                        measured.per_second >= 0.6 * raw[clients].per_second,
                    )
                )
        finally:
            self.stack.stop(service)

    async def load_intake(
        self, process: Process, clients: int, label: str, headers: dict[str, str] | None
    ) -> http_load.Throughput:
        sizes = self.sizes
        result = await http_load.intake(
            process.base_url, clients, sizes.http_seconds, sizes.warmup_seconds, headers
        )
        why = http_load.why(result.failures)
        print(f"  {label}, {clients} clients: {result.per_second:,.0f}/s{why}", flush=True)
        return result

    # ------------------------------------------------------------------ whole system

    async def system(
        self, database_name: str, body: Callable[[dict[str, str]], Awaitable[None]]
    ) -> None:
        """All four services on a fresh database and stream, for the duration of ``body``;
        the bench's callers enrolled first."""
        database = self.stack.database(database_name)
        await self.callers.enrol(database)
        await fresh_stream(self.nc, create=False)
        processes = [self.stack.start_service(name, database) for name in SERVICES]
        self.services = {p.label: p for p in processes}
        try:
            for process in processes:
                await wait_ready(process)
            await body({p.label: p.base_url for p in processes})
        finally:
            self.services = {}
            for process in processes:
                self.stack.stop(process)

    # --------------------------------------------------------------------- closed loops

    async def closed_loops(self) -> None:
        """The raw closed loop (bench/raw_loop.py), then ours, at each client count; each
        with the CPU every process spent per loop in the measured window."""
        raw: dict[int, LoopRun] | str
        print("  raw loop: nats-py + asyncpg + uvicorn, four processes", flush=True)
        try:
            raw = await self.raw_loops()
        except Exception as exc:
            traceback.print_exc()
            raw = f"FAILED: {reason_of(exc)}"
        await self.system("loops", lambda urls: self.loops(urls, raw))

    async def raw_loops(self) -> dict[int, LoopRun]:
        dsn = await self.plain_database(RAW_LOOP_DATABASE)
        await fresh_stream(self.nc)  # the services' stream, empty: the raw durables attach
        env = {
            "BENCH_PG": json.dumps(dsn),
            "BENCH_NATS_URL": self.stack.nats_url,
            "BENCH_STREAM": SETTINGS.stream_name,
            "BENCH_PREFIX": SETTINGS.subject_prefix,
            "BENCH_BATCH": str(SETTINGS.consumer_batch_size),
        }
        processes: dict[str, Process] = {}
        try:
            for role in SERVICES:
                port = free_port()
                argv = [sys.executable, "-m", "bench.raw_loop", role, str(port)]
                processes[role] = self.stack.start_process(f"raw-{role}", argv, env, port)
            for process in processes.values():
                await wait_ready(process)
            urls = {role: p.base_url for role, p in processes.items()}
            idle = await self.idle_cores(processes, "raw loop")
            return {
                c: await self.loop_run(urls, None, c, processes, "raw loop", idle) for c in CLIENTS
            }
        finally:
            for process in processes.values():
                self.stack.stop(process)

    async def plain_database(self, name: str) -> dict[str, Any]:
        """A fresh empty database (no migrations); its asyncpg keyword arguments."""
        dsn = asyncpg_dsn(str(self.stack.postgres.url()))
        conn = await asyncpg.connect(**dsn)
        try:
            await conn.execute(f"drop database if exists {name}")
            await conn.execute(f"create database {name}")
        finally:
            await conn.close()
        return {**dsn, "database": name}

    def cpu_meter(self, processes: Mapping[str, Process]) -> CpuMeter:
        """Watches each process, nats-server and the postmaster (each with its children)."""
        pids = {label: process.pid for label, process in processes.items()}
        pids["NATS"] = int(self.stack.nats_server.pid)
        pids["PostgreSQL"] = int(self.stack.postgres.pid)
        sampler = self.stack.rss.thread_id
        return CpuMeter(pids, lambda: () if sampler is None else (sampler,))

    async def idle_cores(self, processes: Mapping[str, Process], label: str) -> float:
        """The servers' CPU with no load, in cores, over the loops' warm-up time: what each
        process spends on its own (fetches that wait, periodic jobs) and every loop figure
        shares; at a low loop rate it is a large part of the CPU per loop."""
        meter = self.cpu_meter(processes)
        meter.start()
        seconds = self.sizes.loop_warmup_seconds
        await asyncio.sleep(seconds)
        meter.stop()
        cores = {p: s / seconds for p, s in meter.seconds.items() if p != LOAD_GENERATOR}
        detail = ", ".join(f"{p} {c:.3f}" for p, c in cores.items())
        idle = meter.servers() / seconds
        print(f"  {label}, idle for {seconds:.0f} s: {idle:.3f} cores ({detail})", flush=True)
        return idle

    async def loop_run(
        self,
        urls: dict[str, str],
        callers: Callers | None,
        clients: int,
        processes: Mapping[str, Process],
        label: str,
        idle: float,
    ) -> LoopRun:
        sizes = self.sizes
        meter = self.cpu_meter(processes)
        result = await http_load.closed_loops(
            urls, callers, clients, sizes.loop_seconds, sizes.loop_warmup_seconds, meter
        )
        cpu = meter.per_loop_ms(result.completed)
        why = http_load.why(result.reasons)
        if result.stage_p50:
            steps = ", ".join(f"{s} {ms(t)}" for s, t in result.stage_p50.items())
            why += f"; p50 by step: {steps}"
        if result.in_flight:
            stages = ", ".join(f"{s} ×{n}" for s, n in result.in_flight.most_common())
            why += f"; under way at the end: {stages}"
        run = LoopRun(result, cpu, idle)
        print(
            f"  {label}, {clients} clients: {loops_text(result)}; "
            f"CPU per loop {cpu_text(run, clients)}{why}",
            flush=True,
        )
        return run

    async def loops(self, urls: dict[str, str], raw: dict[int, LoopRun] | str) -> None:
        ours: dict[int, LoopRun] = {}
        idle = await self.idle_cores(self.services, "closed loops")
        for clients in CLIENTS:
            run = await self.loop_run(
                urls, self.callers, clients, self.services, "closed loops", idle
            )
            ours[clients] = run
            self.rows += loop_rows(clients, run, ours, raw)
            other = raw.get(clients) if isinstance(raw, dict) else None
            if other is not None:
                times = [
                    f"{label} {ms / other.cpu.by_process[label]:.1f}×"
                    for label, ms in run.cpu.by_process.items()
                    if other.cpu.by_process.get(label)
                ]
                print(f"  CPU per loop, ours over raw: {', '.join(times)}", flush=True)

    async def visible(self, urls: dict[str, str]) -> None:
        result = await http_load.visibility(
            urls, self.callers, VISIBLE_RATE, self.sizes.visible_seconds
        )
        measured = (
            f"p50 {ms(result.p50)}, p99 {ms(result.p99)} (of which POST p99 {ms(result.post_p99)})"
            + errors_note(result.failures)
        )
        why = http_load.why(result.reasons)
        print(f"  report-to-visible: {measured} over {result.reports} reports{why}", flush=True)
        met = result.failures == 0 and result.p99 <= 0.25
        self.rows.append(
            Row(f"report-to-visible at {VISIBLE_RATE:.0f}/s", "p99 ≤ 250 ms", measured, met=met)
        )

    async def reads(self) -> None:
        self.rows += await reads.measure(
            self.stack, self.callers, self.sizes.matters, self.sizes.read_requests
        )

    def rss(self) -> None:
        for service in sorted(self.stack.rss.peak_mb):
            peak = self.stack.rss.peak_mb.get(service)
            if peak is not None:
                self.rows.append(
                    Row(
                        f"peak RSS {service}",
                        f"≤ {RSS_LIMIT_MB:.0f} MB",
                        f"{peak:,.0f} MB",
                        met=peak <= RSS_LIMIT_MB,
                    )
                )


def loop_rows(
    clients: int, run: LoopRun, ours: dict[int, LoopRun], raw: dict[int, LoopRun] | str
) -> list[Row]:
    """``closed loops`` and ``CPU per closed loop`` at ``clients``, beside the raw loop's."""
    result, cpu = run.loops, run.cpu
    other = raw.get(clients) if isinstance(raw, dict) else None
    missing = raw if isinstance(raw, str) else "—"
    no_drop = all(result.per_second >= earlier.loops.per_second for earlier in ours.values())
    measured = loops_text(result)
    loops = Row(f"closed loops, {clients} clients", loops_target(clients), measured, missing)
    figure = f"CPU per closed loop, {clients} clients"
    usage = Row(figure, CPU_TARGET, cpu_text(run, clients), missing)
    if other is None:
        return [
            Row(**{**loops.__dict__, "met": False}),
            Row(**{**usage.__dict__, "met": False}),
        ]
    theirs = other.loops
    loops = Row(
        loops.figure,
        loops.target,
        loops.measured,
        loops_text(theirs),
        percent(result.per_second, theirs.per_second),
        result.per_second >= LOOPS_MIN
        and no_drop
        and result.per_second >= LOOPS_SHARE_OF_RAW * theirs.per_second,
    )
    times = cpu.servers_ms / other.cpu.servers_ms if other.cpu.servers_ms > 0 else float("nan")
    usage = Row(
        usage.figure,
        usage.target,
        usage.measured,
        cpu_text(other, clients),
        f"{times:.1f}×" if times == times else "—",  # NaN: no loop ended in the window
        cpu.servers_ms <= CPU_MAX_MS and times <= CPU_MAX_TIMES_RAW,
    )
    return [loops, usage]


def cpu_text(run: LoopRun, clients: int) -> str:
    """CPU per loop with the idle CPU; flagged when fewer loops ended in the window than
    twice the clients (loops longer than the window, or in waves: the figure is rough)."""
    text = f"{run.cpu.text()}; idle {run.idle_cores:.2f} cores"
    if run.loops.completed < 2 * clients:
        text += f"; ROUGH: {run.loops.completed} loops ended in the window"
    return text


def loops_text(result: http_load.Loops) -> str:
    """``"61.2/s (p50 250 ms, p99 410 ms, 3.1 GETs/loop)"``: the polls are part of a loop's
    CPU, and a slower loop polls more."""
    return (
        f"{result.per_second:,.1f}/s (p50 {ms(result.p50)}, p99 {ms(result.p99)}, "
        f"{result.polls:,.1f} GETs/loop)" + errors_note(result.failures)
    )


def catchup_target(service: str) -> str:
    return "≥ 8,000/s and ≥ 70% of one read model" if service == "projection" else "≥ 5,000/s"


def catchup_row(service: str, target: str, result: catchup.CatchUp, raw: catchup.CatchUp) -> Row:
    measured = rate(result.per_second) + f" ({result.events:,} events)"
    if result.dead_letters:
        measured += f", {result.dead_letters:,} dead letters!"
    met = result.per_second >= 5_000 and not result.dead_letters
    return Row(
        f"{service} catch-up",
        target,
        measured,
        rate(raw.per_second),
        percent(result.per_second, raw.per_second),
        met,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def errors_note(count: int) -> str:
    return f", {count:,} failed" if count else ""


def json_dsn(database_url: str) -> str:
    return json.dumps(asyncpg_dsn(database_url))


async def measure(stack: Stack, args: argparse.Namespace, sizes: Sizes) -> list[Row]:
    figures = selected(args)
    nc = await connect(stack.nats_url)
    bench = Bench(stack, nc, sizes, args)
    try:
        services = [f for f in CATCHUP if f in figures]
        if services:
            targets = [(f"{s} catch-up", catchup_target(s)) for s in services]
            await bench.guarded("catch-up", targets, bench.catch_up(services))
        if "relay" in figures:
            targets = [("relay drain", "≥ 70% of raw")]
            await bench.guarded("relay drain", targets, bench.relay())
        if "intake" in figures:
            targets = [(f"intake reports, {c} clients", "≥ 60% of raw") for c in CLIENTS]
            await bench.guarded("intake over HTTP", targets, bench.intake())
        if "loops" in figures:
            targets = [(f"closed loops, {c} clients", loops_target(c)) for c in CLIENTS]
            targets += [(f"CPU per closed loop, {c} clients", CPU_TARGET) for c in CLIENTS]
            await bench.guarded("closed loops", targets, bench.closed_loops())
        if "visible" in figures:
            targets = [(f"report-to-visible at {VISIBLE_RATE:.0f}/s", "p99 ≤ 250 ms")]
            await bench.guarded(
                "report-to-visible", targets, bench.system("visible", bench.visible)
            )
        if "reads" in figures:
            await fresh_stream(nc, create=False)  # nothing of earlier groups reaches the data
            await bench.guarded(
                f"reads at {sizes.matters:,} matters",
                reads.targets(sizes.matters),
                bench.reads(),
            )
        bench.rss()
    finally:
        await nc.close()
    today = date.today().isoformat()
    return [Row(**{**row.__dict__, "date": today}) for row in bench.rows]


def context(args: argparse.Namespace, sizes: Sizes) -> str:
    command = "make bench" + (f" ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else "")
    return (
        f"Measured {date.today().isoformat()} by `{command}` on {os.cpu_count()} cores "
        f"({platform.machine()}, Python {platform.python_version()}): backlog "
        f"{events.backlog_size(sizes.events):,} events, consumer batch "
        f"{SETTINGS.consumer_batch_size}, relay {sizes.relay_rows:,} rows, "
        f"{sizes.http_seconds:.0f} s per HTTP load (closed loops {sizes.loop_seconds:.0f} s "
        f"after {sizes.loop_warmup_seconds:.0f} s of warm-up), read side at {sizes.matters:,} "
        "matters "
        f"({sizes.read_requests} sequential requests per query). Indicative: other work on "
        "the machine moves these figures."
        + (" Catch-up ran under py-spy (--profile), which slows it." if args.profile else "")
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        args.events or base.events,
        args.relay_rows or base.relay_rows,
        base.http_seconds,
        base.warmup_seconds,
        base.visible_seconds,
        args.matters or base.matters,
        base.read_requests,
        base.loop_seconds,
        base.loop_warmup_seconds,
    )
    stack = Stack()
    try:
        print(f"starting embedded NATS and PostgreSQL in {stack.root}", flush=True)
        stack.start()
        rows = asyncio.run(measure(stack, args, sizes))
    except Failed as exc:
        raise SystemExit(f"bench: {exc}") from None
    finally:
        stack.close()
    note = context(args, sizes)
    print(f"\n{note}\n\n{text_table(rows)}")
    if args.write_readme:
        write_readme(REPO / "docs" / "developer" / "benchmarks.md", rows, note)
        print("\ndocs/developer/benchmarks.md: table written between the bench markers")
    if args.quick:
        print("\n(--quick: sizes too small for the targets to mean anything)")
