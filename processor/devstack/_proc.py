"""Process plumbing shared by the local server launchers (Kafka, Redis, PostgreSQL, Connect).

Each launcher starts a server as a child process, waits for it to answer and
tears it down again; keeping those steps in one place means they behave the
same way, including on failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def log(message: str) -> None:
    """Progress goes to stderr so it never mixes with output a caller parses."""
    print(f"[devstack] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Let the kernel pick the port so parallel runs on one machine never collide.

    There is a small window between closing this socket and the server binding
    it; the launchers retry on a bind failure instead of trying to close it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    """A cheap, silent probe to use before a protocol-level check."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], None] | None = None,
    interval: float = 0.1,
) -> float:
    """Poll a condition against a deadline instead of sleeping a guessed amount.

    ``alive`` is called on every round so that a server that crashed during
    start-up fails the wait at once, not after the whole timeout.
    Returns the seconds waited.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if alive is not None:
            alive()
        if condition():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(interval)


def _die_with_parent() -> None:
    """Ask Linux to kill the child if the test process is SIGKILLed.

    atexit handlers never run after SIGKILL, and an orphaned JVM would keep
    half a gigabyte and its ports until the machine is recycled.
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    args: list[str],
    *,
    log_file: Path,
    cwd: Path,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group so stop() can kill all of it.

    The parent-death signal is tied to the thread that forks, so it is only
    requested from the main thread; from a worker thread it would kill the
    server as soon as that thread ended. ``user`` runs it as that account
    (with that account's group only), for servers that refuse to run as root;
    ``env`` adds variables to the inherited environment.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    use_pdeathsig = sys.platform == "linux" and in_main_thread
    with log_file.open("ab") as out:
        return subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if use_pdeathsig else None,
            env={**os.environ, **env} if env else None,
            **as_user(user),
        )


def run_step(
    command: list[str], what: str, *, timeout: float, cwd: Path | None = None, **kwargs: Any
) -> None:
    """A set-up command that must succeed (format storage, create a
    database): its output goes into the error, because that is all a CI log
    will show of why a fresh machine could not start the server."""
    result = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=timeout, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stdout}\n{result.stderr}")


def as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that drop root for one child; nothing when no user is given."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def terminate_group(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM first so servers shut down cleanly, SIGKILL if they hang."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def tail(path: Path, lines: int = 40) -> str:
    """The end of a server log is what explains a failed start."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
