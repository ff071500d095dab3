"""Shared plumbing for the stream benchmarks (not a benchmark itself).

A broker (HYGIENE_KAFKA_BOOTSTRAP, or a LocalKafka started here), process CPU
from /proc, the worker's /metrics and /readyz, and launching ``hygiene``
subprocesses with their own app id and topic names.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from processor.devstack._proc import terminate_group
from processor.settings import Topics

VENV_BIN = Path(sys.executable).parent
HYGIENE = str(VENV_BIN / "hygiene")
CLK_TCK = os.sysconf("SC_CLK_TCK")

TOPIC_FIELDS = tuple(name for name in Topics.model_fields if name != "inputs")
"""Every topic a worker writes, renamed per run (``WorkerEnv.topic``). Taken
from the settings, so a topic added there is never shared between runs: until
2026-11-25 the owner-queue, rollup-member and rollup-row topics were missing
here, and each worker run read every earlier run's regroup messages first."""


def exit_on_sigterm() -> None:
    """Turn SIGTERM (e.g. from `timeout`) into SystemExit so that finally
    blocks stop the workers and the broker this script started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- broker ---------------------------------------------------------------------
class Broker:
    """HYGIENE_KAFKA_BOOTSTRAP when set, else a throw-away LocalKafka."""

    def __init__(self, heap: str = "1g") -> None:
        self.local = None
        bootstrap = os.environ.get("HYGIENE_KAFKA_BOOTSTRAP")
        if bootstrap:
            self.bootstrap = bootstrap
            self.origin = "env"
        else:
            from processor.devstack import LocalKafka

            # LocalKafka's random cluster id starts with '-' one time in 64,
            # which kafka-storage's argument parser rejects: retry.
            for attempt in range(3):
                try:
                    self.local = LocalKafka(heap=heap).start()
                    break
                except RuntimeError as err:
                    if "--cluster-id" not in str(err) or attempt == 2:
                        raise
                    log("kafka-storage rejected a cluster id starting with '-'; retrying")
            assert self.local is not None
            self.bootstrap = self.local.bootstrap_servers
            self.origin = f"LocalKafka {self.local.version}"
        log(f"broker {self.bootstrap} ({self.origin})")

    @property
    def pid(self) -> int | None:
        proc = getattr(self.local, "_proc", None) if self.local else None
        return proc.pid if proc is not None else None

    def close(self) -> None:
        if self.local is not None:
            self.local.stop()


def create_topics(
    bootstrap: str, topics: dict[str, int], config: dict[str, str] | None = None
) -> None:
    from processor.devstack import create_topics as create

    create(bootstrap, topics, config)


def alter_topic_config(bootstrap: str, topic: str, config: dict[str, str]) -> None:
    """Workaround hook (see bench/README.md): raise a topic's max.message.bytes."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def alter() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, config)])
        finally:
            await admin.close()

    asyncio.run(alter())


# ---- CPU ------------------------------------------------------------------------
def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads), from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """utime + stime per thread of a process, by thread name (threads of one
    name summed): which of the event loop and the native calls' threads
    uses the CPU."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            head, tail = (task / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        name = head.split("(", 1)[1]
        fields = tail.split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---- worker -----------------------------------------------------------------------
def free_port() -> int:
    from processor.devstack._proc import free_port as pick

    return pick()


@dataclass
class WorkerEnv:
    bootstrap: str
    app_id: str
    input_topic: str
    partitions: int = 4
    store: str = "memory://"
    data_dir: str = ""
    web_port: int = field(default_factory=free_port)
    sweep_interval: float = 1_000_000.0

    def topic(self, name: str) -> str:
        return f"{self.app_id}.{name.replace('_', '-')}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "HYGIENE_KAFKA_BOOTSTRAP": self.bootstrap,
                "HYGIENE_APP_ID": self.app_id,
                "HYGIENE_PARTITIONS": str(self.partitions),
                "HYGIENE_STORE": self.store,
                "HYGIENE_DATA_DIR": self.data_dir or f"/tmp/{self.app_id}-data",
                "HYGIENE_WEB_HOST": "127.0.0.1",
                "HYGIENE_WEB_PORT": str(self.web_port),
                "HYGIENE_SWEEP_INTERVAL_SECONDS": str(self.sweep_interval),
                "HYGIENE_TOPIC_INPUTS": self.input_topic,
                # The policy's runs turn it on with their own Redis (e2e_bench).
                "HYGIENE_ALERT_POLICY": "false",
            }
        )
        for name in TOPIC_FIELDS:
            env[f"HYGIENE_TOPIC_{name.upper()}"] = self.topic(name)
        return env

    def create_topics(self) -> None:
        out = subprocess.run(
            [HYGIENE, "topics", "create"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"hygiene topics create failed:\n{out.stdout}\n{out.stderr}")

    def start_worker(
        self,
        log_path: Path,
        loglevel: str = "info",
        command: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = self.env() | (extra_env or {})
        with log_path.open("wb") as out:
            return subprocess.Popen(
                [*(command or [HYGIENE]), "worker", "-l", loglevel],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the worker's own process group (it was started in a new
    session by this script), SIGKILL if it does not exit in time."""
    terminate_group(proc, grace=grace)


def metrics(url: str, timeout: float = 2.0) -> dict[str, float] | None:
    """Unlabelled samples of the worker's /metrics (None while it is not up)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            values[name] = float(value)
    return values


def ready(url: str, timeout: float = 2.0) -> bool | None:
    """True/False from /readyz, None while the web server does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(json.loads(response.read()).get("ready"))
    except urllib.error.HTTPError as err:
        if err.code == 503:
            return False
        return None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError):
        return None


def machine() -> str:
    import platform

    cpus = os.cpu_count()
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    return f"{cpus} CPUs{mem}, Python {platform.python_version()}"
