"""A throw-away PostgreSQL server on loopback, for the warehouse tests.

The warehouse SQL and the JDBC sink are only worth testing against the real
database, so this runs Debian's PostgreSQL: ``initdb`` into a temporary
folder and ``postgres`` on a free loopback port, tuned for speed (no fsync)
because nothing in it has to survive. PostgreSQL refuses to run as root, so
when the tests run as root (these machines) the server runs as the
``postgres`` account that Debian's package creates.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from processor.devstack._proc import (
    as_user,
    free_port,
    log,
    run_step,
    spawn,
    tail,
    terminate_group,
)
from processor.devstack.apt import apt_install
from processor.devstack.server import LocalServer

__all__ = ["LocalPostgres", "find_postgres_bin"]

SUPERUSER = "hygiene"
"""Role created by initdb; local connections are trusted, so it has no password."""

_SERVER_ACCOUNT = "postgres"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _bin_dir() -> Path | None:
    # Debian keeps the server binaries out of PATH, one folder per major version.
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def find_postgres_bin() -> Path:
    """The folder holding initdb, postgres, pg_isready and createdb; installed if missing."""
    found = _bin_dir()
    if found is None:
        apt_install("postgresql")
        found = _bin_dir()
    if found is None:
        raise RuntimeError(
            "PostgreSQL is not installed; install it (Debian: apt-get install postgresql)"
        )
    return found


class LocalPostgres(LocalServer):
    """One PostgreSQL cluster on 127.0.0.1 (TCP only, trust authentication).

    Tests isolate themselves with :meth:`create_database` rather than with
    servers of their own, the way they share one Kafka broker.
    """

    kind = "PostgreSQL"

    def __init__(self, *, startup_timeout: float = 60.0, stop_timeout: float = 20.0) -> None:
        super().__init__(startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self._bin: Path | None = None
        self._user: str | None = None

    @property
    def port(self) -> int:
        if self._port is None or self._proc is None:
            raise RuntimeError("LocalPostgres is not running")
        return self._port

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL (psycopg, psql) for one database of this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def jdbc_url(self, database: str = "postgres") -> str:
        """The same database as the JDBC driver inside Kafka Connect names it."""
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{database}"

    def _prepare(self) -> None:
        self._bin = find_postgres_bin()
        self._user = self._server_user()

    def _initialize(self) -> None:
        assert self._tmp is not None
        if self._user is not None:
            shutil.chown(self._tmp, self._user, self._user)
        self._initdb(self._user)

    @staticmethod
    def _server_user() -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(_SERVER_ACCOUNT)
        except KeyError:
            raise RuntimeError(
                "PostgreSQL refuses to run as root and there is no 'postgres' account; "
                "install Debian's postgresql package or run the tests as another user"
            ) from None
        return _SERVER_ACCOUNT

    def _initdb(self, user: str | None) -> None:
        assert self._tmp is not None and self._bin is not None
        run_step(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self._tmp / "data"),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
            cwd=self._tmp,
            timeout=120,
            **as_user(user),
        )

    def _start_once(self) -> bool:
        assert self._tmp is not None and self._bin is not None
        user = self._user
        started = time.monotonic()
        port = free_port()
        logfile = self._tmp / "postgres.log"
        proc = spawn(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self._tmp / "data"),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
                "-c",
                "shared_buffers=32MB",
            ],
            log_file=logfile,
            cwd=self._tmp,
            user=user,
        )
        self._proc, self._port = proc, port

        if not self._wait_started(
            proc, lambda: self._ready(port),
            what=f"PostgreSQL accepting connections on 127.0.0.1:{port}",
            log_text=lambda: tail(logfile),
            port_taken=("could not bind", "already in use"),
        ):
            return False
        self.startup_seconds = time.monotonic() - started
        log(f"PostgreSQL ready on 127.0.0.1:{port} in {self.startup_seconds:.1f}s")
        return True

    def _ready(self, port: int) -> bool:
        assert self._bin is not None
        probe = subprocess.run(
            [str(self._bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "1"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
        return probe.returncode == 0

    def create_database(self, name: str) -> str:
        """A fresh, empty database per test; returns its libpq URL."""
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r} must be a plain lower-case identifier")
        assert self._bin is not None
        run_step(
            [
                str(self._bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                name,
            ],
            f"createdb {name}",
            timeout=60,
        )
        return self.dsn(name)

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGINT is PostgreSQL's fast shutdown: it does not wait for clients
        (a Kafka Connect worker may still hold connections) to disconnect."""
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            terminate_group(proc, grace=5.0)
