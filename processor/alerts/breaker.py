"""When to try a Redis that just failed again.

A dead Redis must cost the stream almost nothing: after a failure, batches
skip Redis entirely until a backoff has passed, and the backoff doubles (up
to a ceiling) while Redis stays down. Pure: time comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Breaker:
    first_backoff: float = 0.5
    max_backoff: float = 30.0
    failures: int = 0
    retry_at: float = 0.0

    @property
    def degraded(self) -> bool:
        return self.failures > 0

    def allows(self, now: float) -> bool:
        return now >= self.retry_at

    def failed(self, now: float) -> bool:
        """Records a failure; True when it is the one that degrades."""
        self.failures += 1
        backoff = min(self.max_backoff, self.first_backoff * 2 ** (self.failures - 1))
        self.retry_at = now + backoff
        return self.failures == 1

    def succeeded(self) -> bool:
        """Records a success; True when it ends a degraded spell."""
        was = self.failures > 0
        self.failures = 0
        self.retry_at = 0.0
        return was
