"""The alert policy as the stream uses it: one Redis call per batch of
alerts, none for a batch without alerts, and alerts that keep flowing when
Redis does not answer.

The decision is recorded in Redis before the batch is published (that is
what makes it atomic across workers and what lets a restarted worker's
re-published alerts be recognised as repeats). If the publish then fails or
is cancelled, ``Decided.release`` undoes the decision so the re-run batch is
decided afresh rather than taken for a repeat of alerts never sent. Only a
worker killed outright between the decision and the broker's ack loses the
real-time copy of those alerts; they stay open in the opportunity's state
and in its owner's hygiene queue.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from processor.alerts import metrics
from processor.alerts.breaker import Breaker
from processor.alerts.connection import policy_rules, redis_client
from processor.alerts.policy import PolicyRules, degraded, published
from processor.alerts.store import DECIDE, RELEASE, Keys, decide_call, read_decisions, release_call
from processor.settings import Settings
from schemas import Alert, AlertRecord

log = logging.getLogger(__name__)


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Decided:
    """A batch's alerts as they are to be published."""

    records: list[AlertRecord]
    _undo: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def release(self) -> None:
        """The batch was not published: forget its decision (best effort)."""
        if self._undo is not None:
            undo, self._undo = self._undo, None
            await undo()


class AlertPolicy:
    """Decides, for every worker alike, which alerts reach a rep in real time.

    ``decide`` never raises for Redis trouble: it answers the degraded
    decision instead (every alert published, thresholds applied), flips
    ``hygiene_redis_degraded`` and logs once, then leaves Redis alone until
    the breaker's backoff has passed.
    """

    def __init__(
        self,
        client: Redis,
        rules: PolicyRules,
        prefix: str,
        *,
        clock: Callable[[], int] = wall_ms,
        monotonic: Callable[[], float] = time.monotonic,
        breaker: Breaker | None = None,
    ) -> None:
        self.client = client
        self.rules = rules
        self.keys = Keys(prefix)
        self.clock = clock
        self.monotonic = monotonic
        self.breaker = breaker or Breaker()
        self._decide = client.register_script(DECIDE)
        self._release = client.register_script(RELEASE)
        metrics.REDIS_DEGRADED.set(0)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertPolicy:
        return cls(redis_client(settings), policy_rules(settings), settings.alert_policy_prefix,
                   breaker=Breaker(max_backoff=settings.alert_policy_backoff_max_seconds))

    @property
    def degraded(self) -> bool:
        return self.breaker.degraded

    async def decide(self, records: Sequence[AlertRecord]) -> Decided:
        if not records:
            return Decided([])
        batch = list(records)
        if not self.breaker.allows(self.monotonic()):
            return Decided(_counted(degraded(batch, self.rules)))
        now = self.clock()
        token = secrets.token_hex(8)
        call = decide_call(batch, self.rules, self.keys, now, token)
        started = time.perf_counter()
        try:
            answer = await self._decide(call.keys, call.args)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return Decided(_counted(degraded(batch, self.rules)))
        metrics.DECIDE_SECONDS.observe(time.perf_counter() - started)
        self._succeeded()
        decisions = read_decisions(batch, answer)
        for record, decision in zip(batch, decisions, strict=True):
            if decision is not None and decision.verdict == "duplicate":
                metrics.SUPPRESSED.labels(rule=record.rule_id, reason="duplicate").inc()

        async def undo() -> None:
            again = release_call(batch, decisions, self.rules, self.keys, now, token)
            if again is None:
                return
            try:
                await self._release(again.keys, again.args)
            except (RedisError, OSError) as exc:
                log.warning("alert policy: could not release an unpublished batch: %s", exc)

        return Decided(_counted(published(batch, decisions)), undo)

    def _failed(self, exc: BaseException) -> None:
        if self.breaker.failed(self.monotonic()):
            metrics.REDIS_DEGRADED.set(1)
            log.warning(
                "alert policy degraded: Redis unreachable (%s: %s); alerts are published "
                "unchecked (realtime, maybe repeated) until it answers again",
                type(exc).__name__, exc,
            )

    def _succeeded(self) -> None:
        if self.breaker.succeeded():
            metrics.REDIS_DEGRADED.set(0)
            log.warning("alert policy recovered: Redis answers again")


def _counted(records: list[AlertRecord]) -> list[AlertRecord]:
    for record in records:
        if isinstance(record, Alert) and record.delivery == "digest":
            metrics.DIGEST_ONLY.labels(rule=record.rule_id, reason=record.delivery_reason).inc()
    return records
