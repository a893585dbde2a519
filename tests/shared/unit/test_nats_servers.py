"""MINQING_NATS_URL: one server, or a cluster's several separated by commas."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from minqing.shared.service.settings import Settings


def test_one_server_is_a_list_of_one() -> None:
    assert Settings(nats_url="nats://10.0.0.1:4222").nats_servers == ["nats://10.0.0.1:4222"]


def test_a_cluster_is_every_server_in_the_order_given() -> None:
    settings = Settings(nats_url="nats://n1:4222, nats://n2:4222,tls://n3:4222")
    assert settings.nats_servers == ["nats://n1:4222", "nats://n2:4222", "tls://n3:4222"]
    assert settings.nats_url == "nats://n1:4222,nats://n2:4222,tls://n3:4222"


@pytest.mark.parametrize(
    "wrong", ["n1:4222", "nats://n1:4222,", "nats://n1:4222;nats://n2:4222", "http://n1:4222"]
)
def test_anything_else_is_refused_naming_the_part(wrong: str) -> None:
    with pytest.raises(ValidationError, match="expected nats://host:port"):
        Settings(nats_url=wrong)
