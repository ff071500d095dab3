"""When to try a Slack request again, and how long to wait first.

Slack asks for patience with 429 and a Retry-After header, and has bad
moments (5xx, dropped connections). Those are retried with exponential
backoff and full jitter, so that several notifier instances that failed
together do not come back together; a Retry-After is a floor, never cut
short by the jitter. Anything else (a 4xx, a revoked webhook, an unknown
channel) will fail the same way every time, so it is not retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


class SlackFailure(Exception):
    """A Slack request that did not succeed, classified for the retry loop."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        transient: bool,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.transient = transient

    @property
    def cause(self) -> str:
        """A metric label: 429, 5xx, network, or the 4xx/API error itself."""
        if self.status == 429:
            return "429"
        if self.status is not None and self.status >= 500:
            return "5xx"
        if self.status is None:
            return "network" if self.transient else "config"
        if self.status == 200:
            return "api_error"
        return str(self.status)


def is_transient_status(status: int) -> bool:
    return status == 429 or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (Slack sends seconds; an HTTP date
    is not worth parsing here and counts as absent)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    max_attempts: int = 6
    max_retry_after: float = 900.0

    def delay(self, failed_attempts: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before the next attempt, after ``failed_attempts``
        (1 after the first failure)."""
        ceiling = min(self.cap, self.base * 2 ** (failed_attempts - 1))
        jittered = rng.uniform(0, ceiling)
        if retry_after is not None:
            # The jitter goes on top so that instances told the same
            # Retry-After spread out instead of stampeding at once.
            return retry_after + rng.uniform(0, min(self.base, ceiling))
        return jittered

    def gives_up(self, failure: SlackFailure, failed_attempts: int) -> str | None:
        """Why this failure ends the attempts (None: try again)."""
        if not failure.transient:
            return "permanent"
        if failed_attempts >= self.max_attempts:
            return f"gave up after {failed_attempts} attempts"
        if failure.retry_after is not None and failure.retry_after > self.max_retry_after:
            return f"Retry-After {failure.retry_after:.0f}s exceeds {self.max_retry_after:.0f}s"
        return None
