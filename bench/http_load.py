"""HTTP load: reports/s at a fixed concurrency, closed loops, and report-to-visible latency.

Every request to a service carries the credentials of whoever does that step in the town
(bench/identity.py); a 401 or 403 ends the run (``identity.Refused``) instead of being
counted as a failed request.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from bench.events import SOURCES, VILLAGES
from bench.identity import Callers, Headers, Refused, check

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
KEEPALIVE_SECONDS = 4.0  # below uvicorn's timeout_keep_alive (5 s), the services' and raw's
LOOP_TIMEOUT_SECONDS = 30.0
# Waiting for another service: look again at once, then back off to this interval.
POLL_MIN_SECONDS, POLL_MAX_SECONDS = 0.005, 0.1
VISIBLE_POLL_SECONDS = 0.01
PROBE_WIDTH = 8  # GETs side by side once the oldest is visible: keeps up with any lag


def report_body(i: int) -> dict[str, Any]:
    """A valid report (README "Try the loop"), with a reporter and a location."""
    return {
        "title": f"Street lights out on Shiguan Road ({i})",
        "description": "Six lamps between the school and the market are dark.",
        "category": ("street_lights", "water", "sanitation", "other")[i % 4],
        "village": VILLAGES[i % len(VILLAGES)],
        "source": SOURCES[i % len(SOURCES)],
        "reporter": {"name": "Zhang San", "phone": "13800001234"},
        "location": {"address": "Shiguan Road", "lat": 33.51, "lon": 119.21},
    }


def session(connections: int) -> aiohttp.ClientSession:
    """Idle connections are let go before uvicorn's keep-alive (5 s) closes them: a loop
    that comes back to a service later than that would otherwise, now and then, reuse a
    connection the server is closing (ServerDisconnectedError, ClientOSError)."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=connections, keepalive_timeout=KEEPALIVE_SECONDS
    )
    return aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT)


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def why(failures: Counter[str]) -> str:
    """What failed, for the log: ``"; failed: HTTP 503 ×3, timed out ×1"``, or nothing."""
    if not failures:
        return ""
    return "; failed: " + ", ".join(f"{reason} ×{n}" for reason, n in failures.most_common())


class Window(Protocol):
    """Told when the measured window opens and closes (a ``cpu.CpuMeter``)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Throughput:
    per_second: float
    errors: int
    failures: Counter[str] = field(default_factory=Counter)  # by reason


async def run_clients(
    clients: int,
    seconds: float,
    warmup: float,
    work: Callable[[int], Awaitable[float | str]],
    window: Window | None = None,
) -> tuple[list[float], Counter[str], float]:
    """``clients`` workers repeat ``work`` until the end; counts what ends inside the window.

    ``work`` returns its latency, or why it failed. Returns (latencies, failures by reason,
    window). An exception out of ``work`` (a refusal by the guard) stops every worker and
    is raised. ``window``, if given, is started when the measured window opens (after the
    warm-up) and stopped when it closes.
    """
    start = time.monotonic()
    measure_from, end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    problems: list[Exception] = []
    stopped = asyncio.Event()

    async def worker(client: int) -> None:
        n = 0
        try:
            while time.monotonic() < end:
                latency = await work(client * 1_000_000 + n)
                n += 1
                finished = time.monotonic()
                if measure_from <= finished <= end:
                    if isinstance(latency, str):
                        failures[latency] += 1
                    else:
                        latencies.append(latency)
        except Exception as exc:
            problems.append(exc)
            stopped.set()

    async def mark(window: Window) -> None:
        await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
        window.start()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        window.stop()

    tasks = [asyncio.create_task(worker(c)) for c in range(clients)]
    marker = asyncio.create_task(mark(window)) if window is not None else None
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopped.wait(), max(0.0, end - time.monotonic()))
    if marker is not None and not problems:
        await marker  # closes the window at ``end``, before the workers are cancelled
    for task in (*tasks, *([marker] if marker else [])):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if problems:
        raise problems[0]
    return latencies, failures, seconds


async def intake(
    base_url: str, clients: int, seconds: float, warmup: float, headers: Headers | None
) -> Throughput:
    """Reports accepted (201) per second with ``clients`` concurrent clients, each request
    with ``headers`` (a reporter's credentials; None for the raw endpoint, which has no
    guard)."""
    async with session(clients) as http:
        url = f"{base_url}/api/v1/reports"

        async def post(i: int) -> float | str:
            try:
                async with http.post(url, json=report_body(i), headers=headers) as response:
                    text = await response.text()
                    check(response.status, "POST /api/v1/reports", text)
                    return 0.0 if response.status == 201 else f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                return type(exc).__name__

        done, failures, window = await run_clients(clients, seconds, warmup, post)
    return Throughput(len(done) / window, failures.total(), failures)


@dataclass(frozen=True)
class Loops:
    per_second: float
    p50: float
    p99: float
    failures: int
    reasons: Counter[str] = field(default_factory=Counter)
    completed: int = 0  # loops that ended inside the window (what CPU per loop divides by)
    polls: float = float("nan")  # GETs per successful loop while waiting (whole run)
    in_flight: Counter[str] = field(default_factory=Counter)  # by stage, when the run ended
    stage_p50: dict[str, float] = field(default_factory=dict)  # each step's median, seconds


async def wait_for(
    http: aiohttp.ClientSession,
    url: str,
    accept: Callable[[dict[str, Any]], bool],
    headers: Headers | None,
    polled: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """GET ``url`` until it answers 200 with a body ``accept`` likes; back off while waiting.
    ``polled`` is called once per GET."""
    delay = POLL_MIN_SECONDS
    deadline = time.monotonic() + LOOP_TIMEOUT_SECONDS
    while True:
        polled()
        async with http.get(url, headers=headers) as response:
            if response.status == 200:
                body: dict[str, Any] = await response.json()
                if accept(body):
                    return body
            else:
                check(response.status, f"GET {url}", await response.text())
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        await asyncio.sleep(delay)
        delay = min(delay * 2, POLL_MAX_SECONDS)


async def closed_loops(
    urls: dict[str, str],
    callers: Callers | None,
    clients: int,
    seconds: float,
    warmup: float,
    window: Window | None = None,
) -> Loops:
    """Each client: report (a reporter), wait for assignment (a supervisor watching),
    resolve (the assigned unit's staff), pass the look-back (line staff of the unit that
    looks back at that unit's work), wait for closed (the supervisor). ``callers`` None:
    no credentials (the raw loop has no guard). ``window`` (a CPU meter) is told when the
    measured window opens and closes."""
    reporter = callers.reporter if callers else None
    supervisor = callers.supervisor if callers else None

    def staff(unit: str) -> Headers | None:
        return callers.staff(unit) if callers else None

    def line_staff(unit: str) -> Headers | None:
        return callers.line_staff(unit) if callers else None

    polls: list[int] = []  # GETs of each successful loop
    stages: dict[int, str] = {}  # each client's loop under way, by the step it is at
    took: dict[str, list[float]] = {}  # each step's durations, in successful loops

    async with session(clients) as http:

        async def loop(i: int) -> float | str:
            result = await one_loop(i)  # cancelled at the end: its stage stays in ``stages``
            stages.pop(i // 1_000_000, None)
            return result

        async def one_loop(i: int) -> float | str:
            started = time.monotonic()
            client = i // 1_000_000
            stage = stages[client] = "report"  # for a failure's reason
            gets = [0]
            steps_took: list[tuple[str, float]] = []
            since = [started]

            def step_done(name: str) -> None:
                now = time.monotonic()
                steps_took.append((name, now - since[0]))
                since[0] = now

            def polled() -> None:
                gets[0] += 1

            try:
                async with http.post(
                    f"{urls['intake']}/api/v1/reports",
                    json=report_body(i),
                    headers=reporter,
                ) as response:
                    if response.status != 201:
                        check(response.status, "POST /api/v1/reports", await response.text())
                        return f"report: HTTP {response.status}"
                    issue_id = (await response.json())["issue_id"]
                step_done(stage)
                stage = stages[client] = "waiting for assigned"
                case = await wait_for(
                    http,
                    f"{urls['followup']}/api/v1/issues/{issue_id}/case",
                    lambda body: body.get("status") == "assigned",
                    supervisor,
                    polled,
                )
                unit = case["unit"]
                step_done(stage)
                steps = [
                    (
                        "resolution",
                        {"unit": unit, "summary": "Fixed", "resolved_by": "wu"},
                        staff(unit),
                    ),
                    (
                        "lookback",
                        {"outcome": "passed", "visitor": "gw-7", "notes": "All lit"},
                        line_staff(unit),
                    ),
                ]
                for step, body, headers in steps:
                    stage = stages[client] = step
                    url = f"{urls['followup']}/api/v1/issues/{issue_id}/{step}"
                    async with http.post(url, json=body, headers=headers) as response:
                        text = await response.text()
                        if response.status != 201:
                            check(response.status, f"POST /api/v1/issues/{{id}}/{step}", text)
                            return f"{step}: HTTP {response.status}"
                    step_done(stage)
                stage = stages[client] = "waiting for closed"
                await wait_for(
                    http,
                    f"{urls['projection']}/api/v1/issues/{issue_id}",
                    lambda body: body.get("status") == "closed",
                    supervisor,
                    polled,
                )
            except (aiohttp.ClientError, TimeoutError, KeyError) as exc:
                return f"{stage}: {type(exc).__name__}"
            step_done(stage)
            polls.append(gets[0])
            for name, seconds in steps_took:
                took.setdefault(name, []).append(seconds)
            return time.monotonic() - started

        latencies, failures, span = await run_clients(clients, seconds, warmup, loop, window)
    return Loops(
        len(latencies) / span,
        quantile(latencies, 0.5),
        quantile(latencies, 0.99),
        failures.total(),
        failures,
        len(latencies),
        statistics.fmean(polls) if polls else float("nan"),
        Counter(stages.values()),
        {name: statistics.median(values) for name, values in took.items()},
    )


@dataclass(frozen=True)
class Visibility:
    reports: int
    p50: float
    p99: float
    failures: int
    post_p99: float  # of the same latency, the part until intake answered 201
    reasons: Counter[str] = field(default_factory=Counter)


async def visibility(
    urls: dict[str, str], callers: Callers, rate: float, seconds: float
) -> Visibility:
    """Open loop at ``rate`` reports/s: time from the scheduled POST to the projection's 200.
    A reporter posts, a supervisor looks.

    Latency counts from the scheduled send time, so a slow intake is not hidden by sending
    late (no coordinated omission). Every 10 ms one prober asks the projection for the oldest
    report not yet seen (``GET /api/v1/issues/{id}``) and, once it answers 200, at once for
    the next ``PROBE_WIDTH`` side by side, and so on until the oldest is not there yet (one
    GET at a time could confirm only ~50 reports/s on these 2 cores: the prober itself would
    lag). Reports become visible in the order intake
    accepted them (outbox order, stream order), so this sees each one within 10 ms while
    costing the projection ~150 GETs/s whatever the lag; were a report visible before an
    older one, its latency would be over-stated, never under-stated. Polling each report
    every 10 ms instead buries a lagging projection under thousands of GETs/s, and then
    measures only the polls.
    """
    async with session(256) as http:
        waiting: dict[int, tuple[str, float]] = {}  # report number -> (issue id, scheduled)
        latencies: list[float] = []
        accepted: list[float] = []
        failures: Counter[str] = Counter()
        posting = True
        refusals: list[Refused] = []  # the guard's: the run ends

        async def post(i: int, scheduled: float) -> None:
            try:
                url = f"{urls['intake']}/api/v1/reports"
                async with http.post(
                    url, json=report_body(i), headers=callers.reporter
                ) as response:
                    if response.status != 201:
                        check(response.status, "POST /api/v1/reports", await response.text())
                        failures[f"report: HTTP {response.status}"] += 1
                        return
                    waiting[i] = ((await response.json())["issue_id"], scheduled)
                    accepted.append(time.monotonic() - scheduled)
            except (aiohttp.ClientError, TimeoutError, KeyError) as exc:
                failures[f"report: {type(exc).__name__}"] += 1
            except Refused as exc:
                refusals.append(exc)

        async def visible(number: int) -> bool:
            issue_id, _ = waiting[number]
            url = f"{urls['projection']}/api/v1/issues/{issue_id}"
            try:
                async with http.get(url, headers=callers.supervisor) as response:
                    check(response.status, "GET /api/v1/issues/{id}", await response.text())
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        async def probe() -> None:
            while posting or waiting:
                tick = time.monotonic()
                width = 1  # the oldest alone; once it is visible, the next ones side by side
                while waiting:
                    numbers = sorted(waiting)[:width]
                    seen = await asyncio.gather(*(visible(n) for n in numbers))
                    now = time.monotonic()
                    for number, ok in zip(numbers, seen, strict=True):
                        scheduled = waiting[number][1]
                        if ok:
                            latencies.append(now - scheduled)
                            del waiting[number]
                        elif now - scheduled > LOOP_TIMEOUT_SECONDS:
                            failures[f"not visible in {LOOP_TIMEOUT_SECONDS:.0f} s"] += 1
                            del waiting[number]
                    if not seen[0]:
                        break
                    width = PROBE_WIDTH
                await asyncio.sleep(max(0.0, tick + VISIBLE_POLL_SECONDS - time.monotonic()))

        prober = asyncio.create_task(probe())
        start = time.monotonic()
        posts = []
        try:
            for i in range(round(rate * seconds)):
                scheduled = start + i / rate
                await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
                if refusals or prober.done():
                    break  # refused by the guard: stop sending
                posts.append(asyncio.create_task(post(i, scheduled)))
            await asyncio.gather(*posts)
            if refusals:
                raise refusals[0]
            posting = False
            await prober
        finally:
            for task in (prober, *posts):
                task.cancel()
            await asyncio.gather(prober, *posts, return_exceptions=True)
    return Visibility(
        len(latencies),
        quantile(latencies, 0.5),
        quantile(latencies, 0.99),
        failures.total(),
        quantile(accepted, 0.99),
        failures,
    )
