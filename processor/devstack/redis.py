"""A throw-away redis-server on loopback, for tests and the local demo.

Tests stop Redis in the middle of a stream to check that the processor
degrades and recovers, so the server must come back on the same port; that is
why this is a small launcher around the real binary rather than a fake.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from processor.devstack._proc import free_port, log, spawn, tail, terminate_group, wait_until
from processor.devstack.apt import apt_install

__all__ = ["LocalRedis", "find_redis_server"]


def find_redis_server() -> str:
    """Install Debian's redis-server on demand, since fresh CI machines lack it."""
    found = shutil.which("redis-server")
    if found:
        return found
    apt_install("redis-server")
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "redis-server is not installed; install it (Debian: apt-get install redis-server) "
            "or point HYGIENE_TEST_REDIS at a running Redis"
        )
    return found


class LocalRedis:
    """redis-server on 127.0.0.1 without persistence, restartable on its port.

    ``stop()`` keeps the port so that ``start()`` brings the same URL back,
    which is what a client configured with that URL will reconnect to.
    """

    def __init__(self, *, port: int | None = None, startup_timeout: float = 20.0) -> None:
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalRedis has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> Self:
        if self.running:
            return self
        binary = find_redis_server()
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="hygiene-redis-"))
            atexit.register(self.close)
        if self._port is None:
            self._port = free_port()
        started = time.monotonic()
        logfile = self._tmp / "redis.log"
        proc = spawn(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self._port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._tmp),
                "--daemonize",
                "no",
            ],
            log_file=logfile,
            cwd=self._tmp,
        )
        self._proc = proc
        client = redis.Redis(
            host="127.0.0.1", port=self._port, socket_connect_timeout=0.5, socket_timeout=0.5
        )

        def alive() -> None:
            if proc.poll() is not None:
                self._proc = None
                raise RuntimeError(
                    f"redis-server exited with code {proc.returncode} on port {self._port}:\n"
                    f"{tail(logfile)}"
                )

        def pings() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_until(
                pings,
                timeout=self.startup_timeout,
                what=f"redis-server answering PING on port {self._port}",
                alive=alive,
                interval=0.05,
            )
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()
        self.startup_seconds = time.monotonic() - started
        log(f"Redis ready on {self.url} in {self.startup_seconds:.2f}s")
        return self

    def stop(self) -> None:
        """Kill the server but keep port and folder, so start() can bring it back."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate_group(proc, grace=5.0)

    def close(self) -> None:
        """Stop for good and remove the temporary folder; idempotent for atexit."""
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        atexit.unregister(self.close)
