"""The three NATS nodes on three hosts of their own (network namespaces joined by veth links
to a switch, made by the test); under a steady load the stream leader's host is cut off from
the other two and from the services, as a pulled cable would, and later healed. The other
two elect a leader and carry on; services connected to the lost node find it stale and move;
the healed node catches up. Nothing acknowledged is lost and nothing is applied twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.actors import assert_actors_are_principals
from tests.support.cluster import nats_cluster
from tests.support.harness import isolated_settings
from tests.support.loop import LIST, Load, closed_exactly_once, read, verified_and_rebuilt
from tests.support.processes import poll, running_replicas

pytestmark = [pytest.mark.e2e, pytest.mark.operations]


def test_a_nats_node_cut_off_under_load_then_healed_loses_nothing_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    if why := netns.available():
        pytest.skip(why)
    with netns.hosts(3) as hosts, nats_cluster(tmp_path / "nats", hosts=hosts) as cluster:
        settings = isolated_settings(
            cluster.url,
            database_url,
            stream_replicas=3,
            consumer_ack_wait_seconds=3.0,
            nats_ping_seconds=1,  # a lost server is found stale within seconds
            rate_limit_per_principal="100000/minute",
            rate_limit_per_source="100000/minute",
        )
        with running_replicas(settings, tmp_path / "logs") as services:
            load = Load(services)
            load.start()
            load.wait_closed(10)
            leader = cluster.stream_leader(settings.stream_name)
            lost = cluster.node(leader)
            assert lost.host is not None
            before = len(load.acknowledged)
            lost.host.cut()
            cut_off_for = load.wait_closed_from(before)  # the loop works again without it
            load.wait_closed(len(load.closed) + 15)
            new_leader = cluster.stream_leader(settings.stream_name, not_of=leader)
            lost.host.heal()
            healed = len(load.acknowledged)
            load.wait_closed_from(healed)
            caught_up = poll(
                lambda: cluster.replicas_current(settings.stream_name), bool, within=60
            )
            rejoined = lost.running  # the cut-off node kept running and came back
            load.stop()
            acknowledged = set(load.acknowledged)
            assert not load.errors, load.errors
            closed_exactly_once(settings, acknowledged)
            assert {m["status"] for m in read(settings, LIST)} == {"closed"}
            verified_and_rebuilt(settings)
        asyncio.run(assert_actors_are_principals(settings))

    print(
        f"\n{len(acknowledged)} matters closed; {leader} cut off, {new_leader} led; a matter "
        f"reported after the cut closed {cut_off_for:.1f}s later"
    )
    assert new_leader != leader and caught_up and rejoined
