"""Session-wide Kafka and Redis for the integration tests.

Started once per run because a broker start costs seconds; each test isolates
itself with its own topic, group or key names instead of its own server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from processor.devstack import (
    KafkaService,
    RedisService,
    kafka_from_env_or_start,
    redis_from_env_or_start,
)


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[KafkaService]:
    service = kafka_from_env_or_start()
    yield service
    service.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: KafkaService) -> str:
    return kafka_service.bootstrap_servers


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisService]:
    service = redis_from_env_or_start()
    yield service
    service.close()


@pytest.fixture(scope="session")
def redis_url(redis_service: RedisService) -> str:
    return redis_service.url
