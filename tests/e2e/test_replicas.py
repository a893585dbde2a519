"""Two replicas of every service on a three-node NATS cluster (R3 streams), under a steady
load of matters going round the loop: mid-run the stream's leader node and one replica of
each service are killed. Every acknowledged report is closed exactly once, each matter's
audit trail is complete and in order, the chain verifies, and the projection equals a fresh
rebuild of it from the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from minqing.shared.service.settings import SERVICES
from tests.support.actors import assert_actors_are_principals
from tests.support.cluster import nats_cluster
from tests.support.harness import isolated_settings
from tests.support.loop import (
    LIST,
    Load,
    closed_exactly_once,
    read,
    scrape_counter,
    verified_and_rebuilt,
)
from tests.support.processes import running_replicas

pytestmark = [pytest.mark.e2e, pytest.mark.operations]


def test_replicas_on_a_cluster_lose_the_stream_leader_and_one_of_each_and_close_every_matter(
    database_url: str, tmp_path: Path
) -> None:
    with nats_cluster(tmp_path / "nats") as cluster:
        settings = isolated_settings(
            cluster.url,
            database_url,
            stream_replicas=3,
            # what a killed replica held comes back to the other within seconds
            consumer_ack_wait_seconds=3.0,
            rate_limit_per_principal="100000/minute",
            rate_limit_per_source="100000/minute",
        )
        with running_replicas(settings, tmp_path / "logs") as services:
            load = Load(services)
            load.start()
            load.wait_closed(15)
            # Both replicas of each consumer service took a share of the work.
            shares = {
                name: [scrape_counter(r.url, "minqing_events_consumed_total") for r in group]
                for name, group in services.items()
                if name != "intake"
            }
            leader = cluster.stream_leader(settings.stream_name)
            closed_before, reported_before = len(load.closed), len(load.acknowledged)
            cluster.node(leader).kill()
            for name in SERVICES:
                services[name][0].kill()
            recovered_in = load.wait_closed_from(reported_before)
            load.wait_closed(closed_before + 20)
            new_leader = cluster.stream_leader(settings.stream_name)
            load.stop()
            acknowledged = set(load.acknowledged)
            assert not load.errors, load.errors
            closed_exactly_once(settings, acknowledged)
            listed = read(settings, LIST)
            verified_and_rebuilt(settings)
            redelivered = {
                name: scrape_counter(group[1].url, "minqing_events_redelivered_total")
                for name, group in services.items()
            }
        asyncio.run(assert_actors_are_principals(settings))

    print(
        f"\n{len(acknowledged)} matters closed; leader {leader} killed, {new_leader} leads; "
        f"a matter reported after the kills closed {recovered_in:.1f}s later; consumed "
        f"before the kills by replica: {shares}; redelivered to the survivors: {redelivered}"
    )
    assert new_leader != leader
    assert all(all(share > 0 for share in group) for group in shares.values()), shares
    assert len(acknowledged) >= 35
    assert {m["issue_id"] for m in listed} == acknowledged
    assert {m["status"] for m in listed} == {"closed"}
