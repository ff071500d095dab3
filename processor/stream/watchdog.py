"""A worker whose table recovery stops making progress restarts itself.

A recovery that waits for changelog records that never come leaves the
worker up but useless: /readyz stays 503, its partitions are processed by
nobody, and nothing says why (one such stall was seen in the two-worker
takeover test and its cause is still unknown, README "Known issues"). A
supervisor restarts a worker that exits; it cannot restart one that waits.
So after ``HYGIENE_RECOVERY_STALL_SECONDS`` without progress the worker logs
what each partition still needs and every asyncio task's stack (the clues),
then crashes with ``RecoveryStalled`` and a non-zero exit.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mode import get_logger
from mode.utils.logging import cry

log = get_logger(__name__)


EXIT_CODE = 70
"""EX_SOFTWARE: the worker gave up on itself."""

SHUTDOWN_GRACE_SECONDS = 15.0


class RecoveryStalled(RuntimeError):
    """Recovery made no progress for the configured time."""


@dataclass
class StallWatch:
    """Pure: fed the recovery's position over time, answers when it has not
    moved for ``limit_seconds`` while there was still something to recover."""

    limit_seconds: float
    _position: int | None = None
    _since: float | None = None

    def observe(self, now: float, remaining: int, position: int) -> float | None:
        """``remaining``: changelog records still to recover (0: nothing to
        wait for); ``position``: any number that grows with every record
        recovered. Returns how long it has been stuck once that exceeds the
        limit, else None."""
        if remaining <= 0 or position != self._position:
            self._position, self._since = position, now
            return None
        assert self._since is not None
        stuck = now - self._since
        return stuck if stuck >= self.limit_seconds else None


def recovery_progress(recovery: Any) -> tuple[int, int, dict[str, int]]:
    """(records remaining, a position that grows with progress, remaining per
    partition) of a Faust ``Recovery``, active partitions only: standbys never
    hold readiness up."""
    if not recovery.in_recovery:
        return 0, 0, {}
    remaining: Mapping[Any, int] = recovery.active_remaining()
    behind = {f"{tp.topic}:{tp.partition}": int(n) for tp, n in remaining.items() if n > 0}
    position = sum(o for o in recovery.active_offsets.values() if o is not None)
    return sum(behind.values()), position, behind


def tasks_dump() -> str:
    """Every asyncio task's stack, as mode prints them on SIGUSR1."""
    out = io.StringIO()
    cry(file=out)
    return out.getvalue()


async def check(app: Any, watch: StallWatch, now: float) -> None:
    remaining, position, behind = recovery_progress(app.tables.recovery)
    stuck = watch.observe(now, remaining, position)
    if stuck is None:
        return
    reason = RecoveryStalled(
        f"recovery stalled: no changelog record for {stuck:.0f}s with {remaining} still to "
        f"recover ({behind}); exiting so that the supervisor restarts the worker")
    log.error("%s; asyncio tasks:\n%s", reason, tasks_dump())
    # A clean stop can hang on the very thing that stalled (a broker that
    # answers nothing): past a grace period the process exits regardless.
    deadline = threading.Timer(SHUTDOWN_GRACE_SECONDS, os._exit, args=(EXIT_CODE,))
    deadline.daemon = True
    deadline.start()
    await app.crash(reason)
