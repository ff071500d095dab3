"""Kafka and Redis for tests and the local demo, from wherever they can come.

(PostgreSQL and Kafka Connect, for the warehouse tests only, are always the
local launchers :class:`LocalPostgres` and :class:`LocalConnect`.)

The same test suite runs on machines with a Docker engine and on machines
without one (these development and CI machines), so the choice is made here,
once per run, in this order:

1. ``HYGIENE_TEST_KAFKA`` (bootstrap servers) / ``HYGIENE_TEST_REDIS`` (URL):
   services someone already runs, e.g. ``scripts/local-services.sh``;
2. testcontainers, when a Docker engine answers within a second;
3. :class:`LocalKafka` / :class:`LocalRedis` on loopback.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from processor.devstack._proc import log
from processor.devstack.connect import LocalConnect
from processor.devstack.kafka import LocalKafka, create_topics, create_topics_async
from processor.devstack.postgres import LocalPostgres
from processor.devstack.redis import LocalRedis

__all__ = [
    "KafkaService",
    "LocalConnect",
    "LocalKafka",
    "LocalPostgres",
    "LocalRedis",
    "RedisService",
    "Services",
    "create_topics",
    "create_topics_async",
    "docker_available",
    "kafka_from_env_or_start",
    "redis_from_env_or_start",
    "services_from_env_or_start",
]

Origin = Literal["env", "docker", "local"]

# Same broker line as LocalKafka (Confluent Platform 7.9 ships Apache Kafka 3.9).
_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
_REDIS_IMAGE = "redis:7"


def _noop() -> None:
    return None


@dataclass
class KafkaService:
    bootstrap_servers: str
    origin: Origin
    _close: Callable[[], None] = field(default=_noop, repr=False)

    def close(self) -> None:
        self._close()


@dataclass
class RedisService:
    url: str
    origin: Origin
    local: LocalRedis | None = None
    """Set only when this run owns a LocalRedis, the one kind tests can stop and restart."""
    _close: Callable[[], None] = field(default=_noop, repr=False)

    def close(self) -> None:
        self._close()


@dataclass
class Services:
    kafka: KafkaService
    redis: RedisService

    def close(self) -> None:
        self.redis.close()
        self.kafka.close()


@functools.cache
def docker_available() -> bool:
    """Ask the engine directly with a 1 s timeout; a hung socket must not stall the run.

    The socket check comes first because docker-py leaks a socket (a
    ResourceWarning in pytest) when it fails to connect, the usual case here.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    try:
        import docker  # type: ignore[import-untyped, unused-ignore]

        client = docker.from_env(timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def kafka_from_env_or_start() -> KafkaService:
    bootstrap = os.environ.get("HYGIENE_TEST_KAFKA")
    if bootstrap:
        return KafkaService(bootstrap, "env")
    if docker_available():
        try:
            from testcontainers.community.kafka import KafkaContainer

            container = (
                KafkaContainer(_KAFKA_IMAGE)
                .with_kraft()
                .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
                .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
                .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true")
                .start()
            )
            return KafkaService(container.get_bootstrap_server(), "docker", container.stop)
        except Exception as err:
            log(f"testcontainers Kafka failed ({err!r}); starting a local broker instead")
    kafka = LocalKafka().start()
    return KafkaService(kafka.bootstrap_servers, "local", kafka.stop)


def redis_from_env_or_start() -> RedisService:
    url = os.environ.get("HYGIENE_TEST_REDIS")
    if url:
        return RedisService(url, "env")
    if docker_available():
        try:
            from testcontainers.community.redis import RedisContainer

            container = RedisContainer(_REDIS_IMAGE).start()
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            return RedisService(f"redis://{host}:{port}/0", "docker", None, container.stop)
        except Exception as err:
            log(f"testcontainers Redis failed ({err!r}); starting a local redis-server instead")
    local = LocalRedis().start()
    return RedisService(local.url, "local", local, local.stop)


def services_from_env_or_start() -> Services:
    """Both services for one run; Kafka is not left running if Redis fails to start."""
    with contextlib.ExitStack() as stack:
        kafka = kafka_from_env_or_start()
        stack.callback(kafka.close)
        redis = redis_from_env_or_start()
        stack.pop_all()
        return Services(kafka, redis)
