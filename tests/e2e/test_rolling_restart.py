"""A rolling restart under load: one replica at a time of every service gets SIGTERM, stops
fetching, finishes and acknowledges what it has, flushes its outbox and exits by itself
(status 0), then starts again; the other replica carries on. Nothing is redelivered,
nothing is lost, and every acknowledged report is closed exactly once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from minqing.shared.service.settings import SERVICES, Settings
from tests.support.loop import Load, closed_exactly_once, scrape_counter
from tests.support.processes import running_replicas

pytestmark = [pytest.mark.e2e, pytest.mark.operations]

ACK_WAIT = 3.0  # a message held by a replica that left without acknowledging comes back by then
REDELIVERED = "minqing_events_redelivered_total"


def test_a_rolling_restart_under_load_redelivers_nothing_and_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "consumer_ack_wait_seconds": ACK_WAIT,
            "rate_limit_per_principal": "100000/minute",
            "rate_limit_per_source": "100000/minute",
        }
    )
    redelivered: list[float] = []  # each process's count, read just before it is stopped
    exits: dict[str, list[tuple[int | None, float]]] = {name: [] for name in SERVICES}
    shutdowns: dict[Path, int] = {}
    with running_replicas(settings, tmp_path / "logs") as services:
        load = Load(services)
        load.start()
        load.wait_closed(10)
        for replica in (0, 1):
            for name in SERVICES:
                process = services[name][replica]
                closed = len(load.closed)
                redelivered.append(scrape_counter(process.url, REDELIVERED))
                assert process.process is not None
                stopping = time.monotonic()
                process.terminate()
                code = process.process.wait(timeout=60)
                exits[name].append((code, time.monotonic() - stopping))
                # It shut down by itself: its lifespan ended (consumers, relay, connections);
                # uvicorn then re-raises the signal, so the exit status says SIGTERM.
                said = process.log_path.read_text(errors="replace")
                shutdowns[process.log_path] = shutdowns.get(process.log_path, 0) + 1
                assert said.count("Application shutdown complete") == shutdowns[process.log_path], (
                    process.log_tail()
                )
                process.start()
                load.wait_closed(closed + 3)  # the loop goes on through the restarted one
        load.stop()
        acknowledged = set(load.acknowledged)
        assert not load.errors, load.errors
        closed_exactly_once(settings, acknowledged)
        time.sleep(ACK_WAIT + 2.0)  # whatever was left unacknowledged would be back by now
        closed_exactly_once(settings, acknowledged)
        for group in services.values():
            redelivered += [scrape_counter(process.url, REDELIVERED) for process in group]

    print(f"\n{len(acknowledged)} matters closed; SIGTERM to exit (code, seconds): {exits}")
    assert {code for group in exits.values() for code, _ in group} <= {0, -signal.SIGTERM}, exits
    assert sum(redelivered) == 0, redelivered
