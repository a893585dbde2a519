"""CPU seconds each process of the stack spends in a measured window, from psutil.

A watched process is counted with its whole tree: its own user + system time, the time of
the children it has already reaped (``children_user`` / ``children_system``), and every
live descendant's own time and reaped time. PostgreSQL is watched by its postmaster: its
backends come and go, and one that exits inside the window moves from "live child" at the
start to the postmaster's reaped-children time at the end, so nothing it spent is lost or
counted twice. The load generator (the bench's own process) is counted alone, without its
children (the servers and services it started), without the threads it is told to leave out
(the RSS sampler's: it scans /proc several times a second), and without the meter's own
reads (taken outside its window: the others first at the start, itself first at the end).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]

LOAD_GENERATOR = "load generator"


def tree_seconds(process: psutil.Process) -> float:
    """CPU seconds (user + system) of ``process`` and every descendant, live or reaped."""
    total = 0.0
    # Descendants first, then the parent's reaped time: a child that exits between the two
    # reads is counted twice in that snapshot (the window is off by its time), never missed.
    with contextlib.suppress(psutil.Error):
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
    times = process.cpu_times()
    return float(total + times.user + times.system + times.children_user + times.children_system)


def own_seconds(process: psutil.Process, leave_out: Collection[int] = ()) -> float:
    """CPU seconds (user + system) of ``process`` alone, less its threads ``leave_out``
    (native thread ids)."""
    times = process.cpu_times()
    total = times.user + times.system
    if leave_out:
        with contextlib.suppress(psutil.Error):
            for thread in process.threads():
                if thread.id in leave_out:
                    total -= thread.user_time + thread.system_time
    return float(total)


@dataclass
class CpuMeter:
    """CPU seconds of each watched process tree between ``start()`` and ``stop()``, and of
    the load generator (this process) apart."""

    pids: Mapping[str, int]
    # native ids of this process's threads that are not load (the RSS sampler's), read
    # when the window opens and closes
    not_load: Callable[[], Collection[int]] = lambda: ()
    seconds: dict[str, float] = field(default_factory=dict)
    _processes: dict[str, psutil.Process] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)
    _me: psutil.Process = field(default_factory=psutil.Process)

    def __post_init__(self) -> None:
        self._processes = {label: psutil.Process(pid) for label, pid in self.pids.items()}

    def _others(self) -> dict[str, float]:
        return {label: tree_seconds(p) for label, p in self._processes.items()}

    def start(self) -> None:
        self._started = self._others()
        self._started[LOAD_GENERATOR] = own_seconds(self._me, self.not_load())

    def stop(self) -> None:
        if not self._started:
            raise RuntimeError("CpuMeter.stop() before start()")
        me = own_seconds(self._me, self.not_load())
        ended = {**self._others(), LOAD_GENERATOR: me}
        self.seconds = {label: ended[label] - self._started[label] for label in ended}

    def servers(self) -> float:
        """CPU seconds of every watched process (the load generator apart)."""
        return sum(s for label, s in self.seconds.items() if label != LOAD_GENERATOR)

    def per_loop_ms(self, loops: int) -> CpuPerLoop:
        """Milliseconds per completed loop, per process and for the servers together."""
        if not self.seconds:
            raise RuntimeError("the CPU window was never closed")
        if loops <= 0:
            nothing = {label: float("nan") for label in self.seconds}
            return CpuPerLoop(float("nan"), nothing, self.servers())
        per = {label: 1000 * s / loops for label, s in self.seconds.items()}
        return CpuPerLoop(1000 * self.servers() / loops, per, self.servers())


@dataclass(frozen=True)
class CpuPerLoop:
    """Milliseconds of CPU per closed loop: the servers' total and each process's."""

    servers_ms: float
    by_process: dict[str, float]
    servers_seconds: float  # in the whole window

    def text(self) -> str:
        """``"41.0 ms: intake 9.1, ..., PostgreSQL 12.0 (load generator 6.2)"``."""
        if self.servers_ms != self.servers_ms:  # NaN: no loop ended inside the window
            return f"no loop ended in the window ({self.servers_seconds:,.1f} s of server CPU)"
        parts = [
            f"{label} {ms:,.1f}" for label, ms in self.by_process.items() if label != LOAD_GENERATOR
        ]
        load = self.by_process.get(LOAD_GENERATOR, float("nan"))
        return f"{self.servers_ms:,.1f} ms: {', '.join(parts)} ({LOAD_GENERATOR} {load:,.1f})"
