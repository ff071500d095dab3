"""A real Kafka Connect worker with Debezium's JDBC sink, for the warehouse tests.

The sink configurations in ``deploy/warehouse/`` are only "working" if a
real worker runs them, so this starts one the way :mod:`processor.devstack.kafka`
starts the broker: Apache Kafka Connect's jars and the connector plugin come
from Maven Central once, into the cache outside the repository, and every run
starts a standalone worker on loopback with its REST API on a free port.

Two version choices are forced by what the sink needs, not taste:

* Connect 4.2 or later, although the broker stays on 3.9: the stage-history
  records are schemaless JSON and Debezium's JDBC sink needs a schema; since
  4.2 ``JsonConverter`` can apply one given in its configuration
  (``schema.content``) to plain JSON. A 4.x worker talks to a 3.9 broker.
* Debezium's JDBC sink depends on ``org.hibernate:hibernate-agroal`` at a
  version that Maven Central does not serve under that group, so the POM
  below swaps in ``org.hibernate.orm:hibernate-agroal`` and pins
  hibernate-core to the same release. The drivers for databases other than
  PostgreSQL are left out (about 10 MB nobody here loads).
"""

from __future__ import annotations

import json
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from processor.devstack._proc import (
    free_port,
    log,
    port_accepts,
    spawn,
    tail,
    wait_until,
)
from processor.devstack.kafka import java_binary
from processor.devstack.maven import cache_root, fetch_jars
from processor.devstack.server import LocalServer

__all__ = [
    "CONNECT_VERSION",
    "DEBEZIUM_JDBC_VERSION",
    "JDBC_SINK_CLASS",
    "ConnectError",
    "LocalConnect",
    "ensure_connect_jars",
    "ensure_jdbc_sink_plugin",
]

CONNECT_VERSION = "4.3.1"
DEBEZIUM_JDBC_VERSION = "3.6.0.Final"
JDBC_SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"

_HIBERNATE_VERSION = "7.2.19.Final"
_LOG4J_VERSION = "2.26.1"
_OTHER_DRIVERS = (
    ("com.mysql", "mysql-connector-j"),
    ("org.mariadb.jdbc", "mariadb-java-client"),
    ("com.microsoft.sqlserver", "mssql-jdbc"),
    ("com.oracle.database.jdbc", "ojdbc11"),
)


class ConnectError(RuntimeError):
    """The worker's REST API answered with an error."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Kafka Connect answered {status}: {body}")
        self.status = status
        self.body = body


def _worker_pom(version: str) -> str:
    # connect-runtime declares no logging backend (the distribution adds
    # log4j2), so the same backend is added here.
    deps = [
        ("org.apache.kafka", "connect-runtime", version),
        ("org.apache.kafka", "connect-json", version),
        ("org.apache.kafka", "connect-transforms", version),
        ("org.apache.logging.log4j", "log4j-api", _LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-core", _LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", _LOG4J_VERSION),
    ]
    return _pom("kafka-connect-worker", deps)


def _plugin_pom(version: str) -> str:
    exclusions = [("org.hibernate", "hibernate-agroal"), *_OTHER_DRIVERS]
    excluded = "".join(
        f"<exclusion><groupId>{g}</groupId><artifactId>{a}</artifactId></exclusion>"
        for g, a in exclusions
    )
    return textwrap.dedent(
        f"""\
        <project xmlns="http://maven.apache.org/POM/4.0.0">
          <modelVersion>4.0.0</modelVersion>
          <groupId>local.revops-hygiene</groupId>
          <artifactId>debezium-jdbc-sink-plugin</artifactId>
          <version>1</version>
          <packaging>pom</packaging>
          <dependencyManagement>
            <dependencies>
              <dependency>
                <groupId>org.hibernate.orm</groupId>
                <artifactId>hibernate-core</artifactId>
                <version>{_HIBERNATE_VERSION}</version>
              </dependency>
            </dependencies>
          </dependencyManagement>
          <dependencies>
            <dependency>
              <groupId>io.debezium</groupId>
              <artifactId>debezium-connector-jdbc</artifactId>
              <version>{version}</version>
              <exclusions>{excluded}</exclusions>
            </dependency>
            <dependency>
              <groupId>org.hibernate.orm</groupId>
              <artifactId>hibernate-agroal</artifactId>
              <version>{_HIBERNATE_VERSION}</version>
            </dependency>
          </dependencies>
        </project>
        """
    )


def _pom(artifact: str, deps: list[tuple[str, str, str]]) -> str:
    body = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">'
        "<modelVersion>4.0.0</modelVersion><groupId>local.revops-hygiene</groupId>"
        f"<artifactId>{artifact}</artifactId><version>1</version><packaging>pom</packaging>"
        f"<dependencies>{body}</dependencies></project>\n"
    )


def ensure_connect_jars(version: str = CONNECT_VERSION) -> Path:
    return fetch_jars(
        _worker_pom(version),
        cache_root() / f"kafka-connect-{version}" / "libs",
        what=f"Apache Kafka Connect {version} jars",
        expect="connect-runtime-*.jar",
    )


def ensure_jdbc_sink_plugin(version: str = DEBEZIUM_JDBC_VERSION) -> Path:
    """Returns the plugin path (the folder that holds the plugin's own folder).

    Jars the worker already provides are left out of the plugin, as
    Debezium's own plugin archive leaves them out: Kafka's, SLF4J's and
    Jackson's. A second Jackson inside the plugin's class loader fails at
    task start, because Jackson's ServiceLoader then finds the worker's
    modules, which implement the worker's copy of its interfaces.
    """
    root = cache_root() / f"debezium-jdbc-{version}"
    fetch_jars(
        _plugin_pom(version),
        root / "plugins" / "debezium-connector-jdbc",
        what=f"Debezium JDBC sink connector {version}",
        expect="debezium-connector-jdbc-*.jar",
        extra_args=[
            "-DexcludeGroupIds=org.apache.kafka,org.slf4j,com.fasterxml.jackson.core",
            "-DexcludeArtifactIds=lz4-java,snappy-java,zstd-jni,jakarta.ws.rs-api",
        ],
    )
    return root / "plugins"


class LocalConnect(LocalServer):
    """A standalone Connect worker on 127.0.0.1 with the JDBC sink plugin installed.

    Connectors are created and removed through the REST API
    (:meth:`put_connector`, :meth:`delete_connector`), so one worker serves a
    whole test session. ``env`` is the worker's environment on top of ours:
    the connector configurations read credentials from it through Connect's
    ``env`` config provider, as they do in production.
    """

    kind = "Connect"

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        env: Mapping[str, str] | None = None,
        heap: str = "512m",
        startup_timeout: float = 180.0,
        stop_timeout: float = 20.0,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.bootstrap_servers = bootstrap_servers
        self.env = dict(env or {})
        self.heap = heap
        self._libs: Path | None = None
        self._plugins: Path | None = None

    @property
    def url(self) -> str:
        if self._port is None or self._proc is None:
            raise RuntimeError("LocalConnect is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path | None:
        return None if self._tmp is None else self._tmp / "connect.log"

    def _prepare(self) -> None:
        self._libs = ensure_connect_jars()
        self._plugins = ensure_jdbc_sink_plugin()

    def _start_once(self) -> bool:
        assert self._tmp is not None and self._libs is not None and self._plugins is not None
        libs, plugins = self._libs, self._plugins
        started = time.monotonic()
        port = free_port()
        props = self._write_config(port, plugins)
        logfile = self._tmp / "connect.log"
        proc = spawn(
            [
                java_binary(),
                "-Xms128m",
                f"-Xmx{self.heap}",
                "-XX:+UseG1GC",
                "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self._tmp / 'log4j2.properties'}",
                "-cp",
                f"{libs}/*",
                "org.apache.kafka.connect.cli.ConnectStandalone",
                str(props),
            ],
            log_file=self._tmp / "stdout.log",
            cwd=self._tmp,
            env=self.env,
        )
        self._proc, self._port = proc, port

        tmp = self._tmp
        if not self._wait_started(
            proc, lambda: port_accepts(port) and self._plugin_loaded(),
            what=f"Kafka Connect on port {port} listing {JDBC_SINK_CLASS}",
            log_text=lambda: tail(logfile) + "\n" + tail(tmp / "stdout.log"),
            interval=0.5,
        ):
            return False
        self.startup_seconds = time.monotonic() - started
        log(f"Kafka Connect {CONNECT_VERSION} ready on {self.url} in {self.startup_seconds:.1f}s")
        return True

    def _plugin_loaded(self) -> bool:
        try:
            plugins = self.request("GET", "/connector-plugins")
        except (OSError, ConnectError):
            return False
        return any(p.get("class") == JDBC_SINK_CLASS for p in plugins)

    def _write_config(self, port: int, plugins: Path) -> Path:
        assert self._tmp is not None
        properties = {
            "bootstrap.servers": self.bootstrap_servers,
            "listeners": f"http://127.0.0.1:{port}",
            "plugin.path": str(plugins),
            # Every plugin here has ServiceLoader manifests; reading them is
            # seconds faster than scanning every class of every jar.
            "plugin.discovery": "service_load",
            "offset.storage.file.filename": str(self._tmp / "connect.offsets"),
            "offset.flush.interval.ms": "1000",
            # Converters are set per connector in deploy/warehouse; these
            # defaults only matter for a connector that names none.
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "config.providers": "env",
            "config.providers.env.class": (
                "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
            ),
            # Sink consumers start reading a new topic at once.
            "consumer.metadata.max.age.ms": "1000",
        }
        props = self._tmp / "worker.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self._tmp / "log4j2.properties").write_text(
            textwrap.dedent(
                f"""\
                status = warn
                appender.file.type = File
                appender.file.name = FILE
                appender.file.fileName = {self._tmp / "connect.log"}
                appender.file.layout.type = PatternLayout
                appender.file.layout.pattern = [%d] %p %m (%c)%n
                rootLogger.level = INFO
                rootLogger.appenderRef.file.ref = FILE
                logger.clients.name = org.apache.kafka.clients
                logger.clients.level = WARN
                logger.reflections.name = org.reflections
                logger.reflections.level = ERROR
                logger.hibernate.name = org.hibernate
                logger.hibernate.level = WARN
                """
            )
        )
        return props

    # ---- REST API ---------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """One call to the worker's REST API; JSON in and out."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            raise ConnectError(err.code, err.read().decode(errors="replace")) from None
        return json.loads(payload) if payload else None

    def put_connector(self, name: str, config: Mapping[str, str]) -> None:
        """Create or reconfigure a connector (PUT is idempotent, unlike POST)."""
        self.request("PUT", f"/connectors/{name}/config", dict(config))

    def connector_status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.request("GET", f"/connectors/{name}/status")
        return status

    def wait_running(self, name: str, *, tasks: int = 1, timeout: float = 60.0) -> None:
        """Wait until the connector and its tasks run; a failed task raises at once."""

        def running() -> bool:
            try:
                status = self.connector_status(name)
            except ConnectError as err:
                if err.status == 404:
                    return False
                raise
            states = [t.get("state") for t in status.get("tasks", [])]
            for task in status.get("tasks", []):
                if task.get("state") == "FAILED":
                    raise RuntimeError(f"connector {name} task failed:\n{task.get('trace')}")
            connector_state = status.get("connector", {}).get("state")
            return connector_state == "RUNNING" and states.count("RUNNING") >= tasks

        wait_until(running, timeout=timeout, what=f"connector {name} running", interval=0.3)

    def delete_connector(self, name: str) -> None:
        try:
            self.request("DELETE", f"/connectors/{name}")
        except ConnectError as err:
            if err.status != 404:
                raise
