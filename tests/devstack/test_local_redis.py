"""Redis must come back on the same URL after a stop, because the processor's
outage handling is tested by stopping it mid-stream."""

from __future__ import annotations

import uuid

import pytest
import redis

from processor.devstack import RedisService

pytestmark = pytest.mark.integration


def test_ping_set_get(redis_url: str) -> None:
    key = f"devstack:{uuid.uuid4().hex}"
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping()
        client.set(key, "hello")
        assert client.get(key) == b"hello"


def test_stop_and_start_on_the_same_port(redis_service: RedisService) -> None:
    local = redis_service.local
    if local is None:
        pytest.skip(f"Redis from {redis_service.origin} cannot be restarted by the tests")
    url_before = redis_service.url
    with redis.Redis.from_url(url_before, socket_connect_timeout=1) as client:
        client.set("devstack:restart", "1")

        local.halt()
        with pytest.raises(redis.ConnectionError):
            client.ping()

        local.start()
        assert local.url == url_before
        assert client.ping(), "the same client reconnects to the restarted server"
        assert client.get("devstack:restart") is None, "no persistence: data is gone"
