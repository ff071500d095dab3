"""The processes the demo starts, and the guarantee that it stops them.

Kafka and Redis come from :mod:`processor.devstack` (real servers on
loopback, each in its own process group, killed by the kernel if this
process dies). The worker is ``hygiene worker`` run by this same interpreter,
also in its own session so that a Ctrl-C typed at the terminal reaches only
the demo, which then stops everything in order: worker, Redis, Kafka.

Every PID is written to ``demo-pids.json`` in the output directory as soon
as its process exists, so a test (or a person) can check afterwards that
none is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.devstack import LocalKafka, LocalRedis
from processor.devstack._proc import _die_with_parent, free_port, tail, terminate_group, wait_until
from processor.settings import Settings

PIDS_FILE = "demo-pids.json"
WORKER_LOG = "worker.log"

_WORKER_FIELDS = (
    "kafka_bootstrap", "kafka_security_protocol", "app_id", "store", "data_dir", "partitions",
    "web_host", "web_port", "sweep_interval_seconds", "rules_file", "redis_url", "alert_policy",
)
"""The settings the demo decides for its worker; passed as HYGIENE_* variables."""


def _pid(server: LocalKafka | LocalRedis | None) -> int | None:
    # The launchers keep their Popen private; the PID is only read for the
    # pid file, never used to signal (stop() does that).
    proc: Any = getattr(server, "_proc", None)
    return proc.pid if proc is not None else None


@dataclass
class Stack:
    out_dir: Path
    kafka: LocalKafka | None = None
    redis: LocalRedis | None = None
    redis_skipped: str | None = None
    worker: subprocess.Popen[bytes] | None = None
    settings: Settings | None = None
    pids: dict[str, int] = field(default_factory=dict)
    _workdir: Path | None = None

    # ---- start ----------------------------------------------------------
    def start_redis(self) -> None:
        """Redis is not used by the worker yet (the alert policy that needs it
        is issue 4); it starts in well under a second, so the demo runs the
        same set of services production does. A machine without
        redis-server (and no root to install it) still gets the demo."""
        redis = LocalRedis()
        try:
            redis.start()
        except RuntimeError as err:
            self.redis_skipped = str(err).splitlines()[0]
            return
        self.redis = redis
        self._remember("redis", _pid(redis))

    def start_kafka(self) -> None:
        self.kafka = LocalKafka()
        try:
            self.kafka.start()
        finally:
            self._remember("kafka", _pid(self.kafka))

    def worker_settings(self, *, app_id: str, partitions: int, rules_file: Path) -> Settings:
        assert self.kafka is not None
        self._workdir = Path(tempfile.mkdtemp(prefix="hygiene-demo-worker-"))
        self.settings = Settings(
            kafka_bootstrap=self.kafka.bootstrap_servers,
            kafka_security_protocol="PLAINTEXT",
            app_id=app_id,
            store="memory://",
            data_dir=self._workdir,
            partitions=partitions,
            web_host="127.0.0.1",
            web_port=free_port(),
            # The demo replays a quarter in seconds, so the wall clock is
            # months ahead of most deals until the traffic is through: the
            # worker's own timer would flag every deal mid-story as stale.
            # The demo is the clock instead (see run.Pipeline.sweep).
            sweep_interval_seconds=7 * 24 * 3600.0,
            rules_file=rules_file.resolve(),
            redis_url=self.redis.url if self.redis else "redis://127.0.0.1:6379/0",
            # The alert policy (dedup, budgets, snoozes) runs wherever Redis
            # does: that is the product as deployed.
            alert_policy=self.redis is not None,
        )
        return self.settings

    def start_worker(self) -> Path:
        assert self.settings is not None
        settings = self.settings
        env = dict(os.environ)
        for name in _WORKER_FIELDS:
            env[f"HYGIENE_{name.upper()}"] = str(getattr(settings, name))
        env["PYTHONUNBUFFERED"] = "1"
        log_path = self.out_dir / WORKER_LOG
        with log_path.open("wb") as out:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "processor.cli", "worker", "--loglevel", "info"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._remember("worker", self.worker.pid)
        return log_path

    def wait_worker_ready(self, timeout: float = 120.0) -> float:
        """Polls the worker's /readyz (200 once it owns its partitions)."""
        assert self.settings is not None and self.worker is not None
        worker = self.worker
        url = f"http://127.0.0.1:{self.settings.web_port}/readyz"

        def alive() -> None:
            if worker.poll() is not None:
                raise RuntimeError(
                    f"the worker exited with code {worker.returncode} while starting:\n"
                    f"{tail(self.out_dir / WORKER_LOG, 25)}"
                )

        def ready() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        return wait_until(ready, timeout=timeout, what="worker ready", alive=alive, interval=0.25)

    # ---- stop -----------------------------------------------------------
    def stop(self) -> list[str]:
        """Worker first (it leaves its consumer group while Kafka is up), then
        Redis and Kafka. Never raises; returns what it stopped."""
        stopped: list[str] = []
        worker, self.worker = self.worker, None
        if worker is not None:
            started = time.monotonic()
            with contextlib.suppress(Exception):
                terminate_group(worker, grace=20.0)
            stopped.append(f"worker (pid {worker.pid}, {time.monotonic() - started:.1f}s)")
        redis, self.redis = self.redis, None
        if redis is not None:
            pid = _pid(redis)
            with contextlib.suppress(Exception):
                redis.stop()
            stopped.append(f"Redis (pid {pid})")
        kafka, self.kafka = self.kafka, None
        if kafka is not None:
            pid, started = _pid(kafka), time.monotonic()
            with contextlib.suppress(Exception):
                kafka.stop()
            if pid is not None:
                stopped.append(f"Kafka (pid {pid}, {time.monotonic() - started:.1f}s)")
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        return stopped

    def _remember(self, name: str, pid: int | None) -> None:
        if pid is None:
            return
        self.pids[name] = pid
        path = self.out_dir / PIDS_FILE
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps({"demo": os.getpid(), **self.pids}, indent=2) + "\n")
        partial.replace(path)
