"""A real Apache Kafka broker on loopback, for tests and the local demo.

There is no Docker engine on the development and CI machines, and the
pip-installable Kafka look-alikes break exactly the behaviour this project
tests (changelog recovery, rebalances, transactions). So this module runs the
genuine broker: the jars come from Maven Central once, into a cache outside
the repository, and every run starts a throw-away single-node KRaft cluster
from them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import textwrap
import time
import uuid
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaAdminClient,
    NewTopic,
)
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from processor.devstack import security
from processor.devstack._proc import (
    free_port,
    log,
    port_accepts,
    run_step,
    spawn,
    tail,
)
from processor.devstack.apt import which_or_install
from processor.devstack.maven import cache_root, fetch_jars
from processor.devstack.server import LocalServer

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "LocalKafka",
    "create_topics",
    "create_topics_async",
    "ensure_kafka_jars",
    "kafka_cache_root",
    "kafka_libs_dir",
]

T = TypeVar("T")

DEFAULT_KAFKA_VERSION = "3.9.2"
"""Newest 3.9.x on Maven Central; 3.9 is the last line with reload4j logging,
which the generated log4j.properties below relies on."""

_SLF4J_VERSION = "1.7.36"
_RELOAD4J_VERSION = "1.2.25"


def kafka_cache_root() -> Path:
    """Keep the ~50 MB of jars out of the repository and shared between clones."""
    return cache_root()


def kafka_libs_dir(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Versioned so that bumping Kafka never mixes jars of two releases."""
    return kafka_cache_root() / f"kafka-{version}" / "libs"


def _pom(version: str) -> str:
    # kafka_2.13 declares no logging binding (the distribution tarball adds
    # one), so the reload4j binding is pinned here to what 3.9 ships with.
    return textwrap.dedent(
        f"""\
        <project xmlns="http://maven.apache.org/POM/4.0.0">
          <modelVersion>4.0.0</modelVersion>
          <groupId>local.revops-hygiene</groupId>
          <artifactId>kafka-broker-libs</artifactId>
          <version>1</version>
          <packaging>pom</packaging>
          <dependencies>
            <dependency>
              <groupId>org.apache.kafka</groupId>
              <artifactId>kafka_2.13</artifactId>
              <version>{version}</version>
            </dependency>
            <dependency>
              <groupId>org.slf4j</groupId>
              <artifactId>slf4j-reload4j</artifactId>
              <version>{_SLF4J_VERSION}</version>
            </dependency>
            <dependency>
              <groupId>ch.qos.reload4j</groupId>
              <artifactId>reload4j</artifactId>
              <version>{_RELOAD4J_VERSION}</version>
            </dependency>
          </dependencies>
        </project>
        """
    )


def ensure_kafka_jars(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Download once; later runs only check the marker file (see :func:`fetch_jars`)."""
    return fetch_jars(
        _pom(version),
        kafka_libs_dir(version),
        what=f"Apache Kafka {version} jars",
        expect="kafka_2.13-*.jar",
    )


JAVA_PACKAGE = "openjdk-17-jre-headless"
"""Debian 12's Java 17 runtime, installed when no ``java`` is found."""


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = which_or_install("java", JAVA_PACKAGE)  # nothing installed by hand
    if java is None:
        raise RuntimeError("a JDK/JRE 17+ (java) is needed to run the local Kafka broker "
                           f"(Debian: apt-get install {JAVA_PACKAGE})")
    return java



def _cluster_id() -> str:
    """Kafka's Uuid text form; computed here to save a JVM start."""
    # An id starting with "-" is read as an option by Kafka's storage tool
    # (about 1 start in 64 failed that way): draw again.
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code even when the caller is inside an event loop.

    Fixtures, scripts and async tests all call into this module; a private
    loop in a worker thread works for every one of them.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="devstack-kafka") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _broker_answers(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        info: dict[str, Any] = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
        return bool(info.get("brokers"))
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


class LocalKafka(LocalServer):
    """A single-node KRaft broker (broker and controller in one JVM) on 127.0.0.1.

    Topics are auto-created for convenience, but tests should create theirs
    with :func:`create_topics` first: Faust crashes when an auto-created
    one-partition topic meets a multi-partition changelog.
    """

    kind = "Kafka"

    def __init__(
        self,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        heap: str = "512m",
        startup_timeout: float = 120.0,
        stop_timeout: float = 20.0,
        extra_properties: Mapping[str, str] | None = None,
        secured: bool = False,
    ) -> None:
        """``secured`` adds a SASL_SSL listener (``security``) beside the
        plaintext one, which the tests' own clients keep using."""
        if not version.startswith("3."):
            # 4.x switched to log4j2 and dropped the reload4j binding used here.
            raise ValueError(f"LocalKafka supports Kafka 3.x releases, not {version}")
        super().__init__(startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.version = version
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self.secured = secured
        self.tls: security.Tls | None = None
        self._secured_port: int | None = None
        self._libs: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._port is None or self._proc is None:
            raise RuntimeError("LocalKafka is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def secured_bootstrap_servers(self) -> str:
        """The SASL_SSL listener (``security.MECHANISMS``; trust ``tls.ca_file``)."""
        if self._secured_port is None or self._proc is None:
            raise RuntimeError("LocalKafka is not running with a secured listener")
        return f"127.0.0.1:{self._secured_port}"

    @property
    def log_path(self) -> Path | None:
        """The broker log, so a failing test can point at it while it still exists."""
        return None if self._tmp is None else self._tmp / "logs" / "server.log"

    def _prepare(self) -> None:
        self._libs = ensure_kafka_jars(self.version)

    def _start_once(self) -> bool:
        assert self._tmp is not None and self._libs is not None
        libs = self._libs
        started = time.monotonic()
        java = java_binary()
        classpath = f"{libs}/*"
        data = self._tmp / "data"
        logs = self._tmp / "logs"
        shutil.rmtree(data, ignore_errors=True)
        logs.mkdir(exist_ok=True)
        port, controller_port = free_port(), free_port()
        if self.secured:
            self.tls = self.tls or security.make_tls(self._tmp / "tls")
            self._secured_port = free_port()
        props = self._write_config(port, controller_port, data, logs)
        log4j = f"-Dlog4j.configuration={(self._tmp / 'log4j.properties').as_uri()}"

        run_step(
            [
                java,
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                log4j,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                _cluster_id(),
                "-c",
                str(props),
                *(security.scram_format_arguments() if self.secured else []),
            ],
            "kafka StorageTool format",
            timeout=120,
        )
        formatted = time.monotonic()

        proc = spawn(
            [
                java,
                "-Xms128m",
                f"-Xmx{self.heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:+ExplicitGCInvokesConcurrent",
                "-Djava.awt.headless=true",
                log4j,
                f"-Dkafka.logs.dir={logs}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            log_file=logs / "stdout.log",
            cwd=self._tmp,
        )
        self._proc, self._port = proc, port
        bootstrap = f"127.0.0.1:{port}"

        def server_log() -> str:
            return tail(logs / "server.log") + "\n" + tail(logs / "stdout.log")

        if not self._wait_started(proc, lambda: port_accepts(port),
                                  what=f"Kafka listening on {bootstrap}", log_text=server_log):
            return False
        remaining = max(10.0, self.startup_timeout - (time.monotonic() - started))
        if not self._wait_started(
            proc, lambda: _run_async(_broker_answers(bootstrap)),
            what=f"Kafka answering metadata requests on {bootstrap}",
            log_text=server_log, interval=0.2, timeout=remaining,
        ):
            return False

        ready = time.monotonic()
        self.startup_seconds = ready - started
        log(
            f"Kafka {self.version} ready on {bootstrap} in {self.startup_seconds:.1f}s "
            f"(format {formatted - started:.1f}s, broker {ready - formatted:.1f}s)"
        )
        return True

    def _write_config(self, port: int, controller_port: int, data: Path, logs: Path) -> Path:
        assert self._tmp is not None
        # Internal topics get one partition and one replica, as testcontainers
        # configures them, so the first consumer group and the first
        # transactional producer do not wait for 50-partition topics.
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
        }
        if self._secured_port is not None and self.tls is not None:
            listener = f"{security.LISTENER}://127.0.0.1:{self._secured_port}"
            properties["listeners"] += f",{listener}"
            properties["advertised.listeners"] += f",{listener}"
            properties["listener.security.protocol.map"] += (
                f",{security.LISTENER}:{security.LISTENER}")
            properties.update(security.broker_properties(self.tls))
        properties.update(self.extra_properties)
        props = self._tmp / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self._tmp / "log4j.properties").write_text(
            textwrap.dedent(
                f"""\
                log4j.rootLogger=INFO, file
                log4j.appender.file=org.apache.log4j.FileAppender
                log4j.appender.file.File={logs / "server.log"}
                log4j.appender.file.layout=org.apache.log4j.PatternLayout
                log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
                log4j.logger.kafka.request.logger=WARN
                log4j.logger.state.change.logger=WARN
                log4j.logger.org.apache.kafka.clients=WARN
                """
            )
        )
        return props

async def create_topics_async(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    config: Mapping[str, str] | None = None,
    *,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> None:
    """Create topics up front and wait until every partition has a leader.

    Idempotent for topics that already exist with the requested partition
    count; a different count raises, because a silently mismatched topic is
    what later surfaces as Faust's PartitionsMismatch.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000)
    )
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=dict(config or {}),
                )
                for name, partitions in topics.items()
            ]
        )
        for topic, code, *rest in response.topic_errors:
            error = for_code(code)
            if code != 0 and error is not TopicAlreadyExistsError:
                raise error(f"creating topic {topic!r}: {rest[0] if rest else ''}")

        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(list(topics))
            pending = _topics_not_ready(described, topics)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"topics not ready within {timeout:.0f}s: {pending}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def _topics_not_ready(described: list[dict[str, Any]], wanted: Mapping[str, int]) -> list[str]:
    by_name = {t["topic"]: t for t in described}
    pending = []
    for name, partitions in wanted.items():
        meta = by_name.get(name)
        if meta is None or meta["error_code"] != 0:
            pending.append(name)
            continue
        actual = len(meta["partitions"])
        if actual != partitions:
            if actual > 0:
                raise ValueError(
                    f"topic {name!r} exists with {actual} partitions, {partitions} requested"
                )
            pending.append(name)
        elif any(p["leader"] < 0 for p in meta["partitions"]):
            pending.append(name)
    return pending


def create_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    config: Mapping[str, str] | None = None,
    *,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> None:
    """Sync form of :func:`create_topics_async` for fixtures and scripts."""
    _run_async(
        create_topics_async(
            bootstrap_servers,
            topics,
            config,
            replication_factor=replication_factor,
            timeout=timeout,
        )
    )
