"""Native calls run beside the event loop, not on it.

The worker is one Python thread: everything it does, fetching, producing,
the agents, runs on the event loop. The native calls that carry most of
the per-message work (ingest's ``route_many``, the state agent's
``apply_messages``) release the GIL while they decode and apply, so run in
a thread of their own they use the machine's second core while the loop
goes on producing, acknowledging and feeding the other agents. Each user
gets one thread: its calls stay in order, and a call's objects are never
touched by two threads at once.

``HYGIENE_NATIVE_THREADS=false`` runs them on the loop's thread instead
(what a profile of the loop alone wants, or a machine with one core).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Offload:
    """Runs calls one at a time in a thread named ``name`` (or inline when
    ``threaded`` is false), awaited from the event loop."""

    def __init__(self, name: str, *, threaded: bool = True) -> None:
        self._pool = (concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name, initializer=name_os_thread,
            initargs=(name,)) if threaded else None)
        self._last: concurrent.futures.Future[object] | None = None

    @property
    def threaded(self) -> bool:
        return self._pool is not None

    @property
    def busy(self) -> bool:
        """A call is still running in the thread (even if whoever awaited
        it was cancelled): its objects are not free yet."""
        return self._last is not None and not self._last.done()

    def submit(self, call: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Starts the call (inline: runs it) and returns its future."""
        if self._pool is None:
            done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            try:
                done.set_result(call(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        running = self._pool.submit(call, *args)
        self._last = running  # type: ignore[assignment]
        return asyncio.wrap_future(running)

    async def idle(self) -> None:
        """Returns once no call runs in the thread, whatever became of it
        (one whose awaiter was cancelled runs to its end all the same)."""
        last = self._last
        if last is not None and not last.done():
            await asyncio.wait([asyncio.wrap_future(last)])


def hand_over_sooner(switch_ms: float) -> None:
    """Sets Python's switch interval: how long a thread that holds the GIL
    (the event loop, nearly always busy under load) keeps it while another
    waits. An offloaded call takes the GIL to start, to read the states it
    lacks and to return its results, and its awaiter waits for each
    handover: at Python's 5 ms the core's thread ran about twice as long as
    its CPU time (``bench/README.md``, session 9). Process-wide, so set
    once, by the worker."""
    sys.setswitchinterval(switch_ms / 1000)


_PR_SET_NAME = 15


def name_os_thread(name: str) -> None:
    """Gives the calling thread ``name`` (15 bytes at most) where the OS
    shows it: ``top -H``, ``ps -L`` and /proc then tell the core's and
    ingest's CPU apart from the event loop's (Python's own thread names
    stay inside Python). Best effort: elsewhere than Linux, nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass
