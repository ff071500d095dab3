"""The life cycle the loopback servers share: a temporary folder, a child
process on a free port (retried when the port is taken before the server
binds it), a halt that keeps folder and port so a restart comes back on the
same address, and a stop that is safe to call twice.

Kafka, Kafka Connect, PostgreSQL and Redis differ only in what they fetch or
find first, how they start once and how they are asked to stop; subclasses
supply those parts, so failure handling stays the same for all of them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from processor.devstack._proc import log, terminate_group, wait_until

__all__ = ["LocalServer", "ServerExited"]

_ATTEMPTS = 3


class ServerExited(Exception):
    """Raised from a start-up wait when the child process has already ended."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class LocalServer:
    kind: ClassVar[str]
    """Short name for logs and the temporary folder's prefix."""

    def __init__(self, *, startup_timeout: float, stop_timeout: float) -> None:
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.startup_seconds: float | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

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
        self.stop()

    def start(self) -> Self:
        """Starts the server, or starts it again after ``halt()`` in the same
        folder (``_start_once`` decides whether the port is kept)."""
        if self._proc is not None:
            return self
        self._prepare()
        fresh = self._tmp is None
        if fresh:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"hygiene-{self.kind.lower()}-"))
            atexit.register(self.stop)
        try:
            if fresh:
                self._initialize()
            for attempt in range(_ATTEMPTS):
                if self._start_once():
                    return self
                log(f"{self.kind} port was taken, retrying (attempt {attempt + 2}/{_ATTEMPTS})")
            raise RuntimeError(f"{self.kind} could not bind free ports after {_ATTEMPTS} attempts")
        except BaseException:
            self.stop()
            raise

    def _prepare(self) -> None:
        """Fetch or find what the server runs from, before any folder exists."""

    def _initialize(self) -> None:
        """Fill the fresh temporary folder once, before the first start attempt."""

    def _start_once(self) -> bool:
        """Start and wait until the server answers; False when its port was taken."""
        raise NotImplementedError

    def _wait_started(
        self,
        proc: subprocess.Popen[bytes],
        ready: Callable[[], bool],
        *,
        what: str,
        log_text: Callable[[], str],
        port_taken: Sequence[str] = ("Address already in use",),
        interval: float = 0.1,
        timeout: float | None = None,
    ) -> bool:
        """Waits until ``ready()``. False when the server died because its
        port was taken meanwhile (``port_taken`` found in its log: the caller
        tries another port); RuntimeError with the log's tail when it died
        otherwise or never became ready."""

        def alive() -> None:
            if proc.poll() is not None:
                raise ServerExited(proc.returncode)

        try:
            wait_until(ready, timeout=timeout or self.startup_timeout, what=what, alive=alive,
                       interval=interval)
        except ServerExited as exited:
            self._proc = None
            text = log_text()
            if any(marker in text for marker in port_taken):
                return False
            raise RuntimeError(
                f"{self.kind} exited with code {exited.code} during start-up:\n{text}"
            ) from None
        except TimeoutError as err:
            raise RuntimeError(f"{err}\n{log_text()}") from None
        return True

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        terminate_group(proc, grace=self.stop_timeout)

    def pause(self) -> None:
        """Freezes the server (SIGSTOP to its process group): it keeps its
        connections but answers nothing, like a hung host. For fault tests."""
        assert self._proc is not None, "not running"
        os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None, "not running"
        os.killpg(self._proc.pid, signal.SIGCONT)

    def halt(self) -> None:
        """Stops the process only: folder and port stay, for ``start()``."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._terminate(proc)

    def stop(self) -> None:
        """For good; idempotent, because atexit may call it again after a
        fixture did."""
        self.halt()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._port = None
        atexit.unregister(self.stop)
