"""A throw-away redis-server on loopback, for tests and the local demo.

Tests stop Redis in the middle of a stream to check that the processor
degrades and recovers, so the server must come back on the same port; that is
why this is a small launcher around the real binary rather than a fake, on
the life cycle every local server shares (``processor.devstack.server``).
"""

from __future__ import annotations

import time

import redis

from processor.devstack._proc import free_port, log, spawn, tail
from processor.devstack.apt import which_or_install
from processor.devstack.server import LocalServer

__all__ = ["LocalRedis", "find_redis_server"]


def find_redis_server() -> str:
    """Install Debian's redis-server on demand, since fresh CI machines lack it."""
    found = which_or_install("redis-server", "redis-server")
    if found is None:
        raise RuntimeError(
            "redis-server is not installed; install it (Debian: apt-get install redis-server) "
            "or point HYGIENE_TEST_REDIS at a running Redis"
        )
    return found


class LocalRedis(LocalServer):
    """redis-server on 127.0.0.1 without persistence, restartable on its port:
    ``halt()`` then ``start()`` brings the same URL back, which is what a
    client configured with that URL reconnects to."""

    kind = "Redis"

    def __init__(self, *, port: int | None = None, startup_timeout: float = 20.0) -> None:
        super().__init__(startup_timeout=startup_timeout, stop_timeout=5.0)
        self._port = self._asked_port = port
        self._binary: str | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalRedis has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _prepare(self) -> None:
        if self._binary is None:
            self._binary = find_redis_server()

    def _start_once(self) -> bool:
        assert self._tmp is not None and self._binary is not None
        if self._port is None:
            self._port = free_port()
        port = self._port
        started = time.monotonic()
        logfile = self._tmp / "redis.log"
        proc = spawn(
            [self._binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(self._tmp), "--daemonize", "no"],
            log_file=logfile,
            cwd=self._tmp,
        )
        self._proc = proc
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5,
                             socket_timeout=0.5)

        def pings() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            if not self._wait_started(proc, pings, what=f"redis-server answering PING on port "
                                      f"{port}", log_text=lambda: tail(logfile), interval=0.05):
                if self.startup_seconds is None and self._asked_port is None:
                    self._port = None  # our own pick, taken meanwhile: pick another
                return False
        finally:
            client.close()
        self.startup_seconds = time.monotonic() - started
        log(f"Redis ready on {self.url} in {self.startup_seconds:.2f}s")
        return True
