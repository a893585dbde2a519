"""Streams are created as the settings say (replicas among them), and a service refuses to
start against a stream whose settings differ, naming each difference; the stream is left
as it was (replicas that disagree must not rewrite a shared stream in turn)."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from nats.js.api import StorageType

from minqing.services.projection.app import create_app as create_projection
from minqing.shared.messaging.streams import (
    StreamMismatch,
    ensure_stream,
    ingress_stream_config,
    stream_config,
    stream_differences,
)
from minqing.shared.service.settings import Settings
from tests.support.cluster import nats_cluster
from tests.support.harness import serve


async def test_a_missing_stream_is_created_as_configured_and_an_equal_one_is_accepted(
    settings: Settings,
) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        created = await ensure_stream(js, ingress_stream_config(settings))
        assert created.config.num_replicas == 1
        assert created.config.max_msg_size == settings.ingress_stream_max_msg_bytes
        assert created.config.storage == StorageType.FILE
        again = await ensure_stream(js, ingress_stream_config(settings))  # as the server has it
        assert again.created == created.created
    finally:
        await nc.close()


async def test_a_service_refuses_a_stream_that_differs_naming_each_difference(
    settings: Settings,
) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream_config(settings))  # as an earlier deployment made it
        before = await js.stream_info(settings.stream_name)
        wanted = settings.model_copy(update={"stream_replicas": 3, "duplicate_window_seconds": 60})
        with pytest.raises(StreamMismatch) as refused:
            async with serve(create_projection(wanted)):
                pass  # never reached: the start is refused
        said = str(refused.value)
        assert f"stream {settings.stream_name} differs" in said
        assert "num_replicas is 1, this service needs 3 (MINQING_STREAM_REPLICAS)" in said
        assert "duplicate_window is 600.0, this service needs 60.0" in said
        assert "subjects" not in said and "max_age" not in said  # only what differs
        after = await js.stream_info(settings.stream_name)
        assert after.config == before.config and after.created == before.created
    finally:
        await nc.close()


def test_differences_are_said_plainly_and_unset_values_are_the_servers_defaults(
    settings: Settings,
) -> None:
    config = stream_config(settings)
    assert stream_differences(config, config) == []
    unset = stream_config(settings)
    unset.num_replicas, unset.max_msg_size = None, None  # what the server answers as default
    assert stream_differences(unset, config) == []
    other = stream_config(settings.model_copy(update={"subject_prefix": "elsewhere.events"}))
    [said] = stream_differences(other, config)
    assert said == (
        f"subjects is elsewhere.events.>, this service needs {settings.subject_prefix}.> "
        "(MINQING_*_SUBJECT_PREFIX)"
    )


async def test_on_a_three_node_cluster_streams_have_the_configured_replicas(
    settings: Settings, tmp_path: Path
) -> None:
    with nats_cluster(tmp_path) as cluster:
        on_cluster = settings.model_copy(update={"nats_url": cluster.url, "stream_replicas": 3})
        nc = await nats.connect(cluster.urls)
        try:
            js = nc.jetstream()
            info = await ensure_stream(js, stream_config(on_cluster))
            assert info.config.num_replicas == 3
            assert info.cluster is not None and info.cluster.leader
            assert len(info.cluster.replicas or []) == 2  # besides the leader
            # A service configured for one server is refused, not allowed to shrink it.
            with pytest.raises(StreamMismatch, match=r"num_replicas is 3, this service needs 1"):
                await ensure_stream(js, stream_config(settings))
            assert (await js.stream_info(settings.stream_name)).config.num_replicas == 3
        finally:
            await nc.close()
