"""Delivering one record: decide what Slack should see, send it with
retries, and remember it.

Decisions, in order: an alert the policy routed to the digest is not posted
(the rep sees it in the weekly queue); an alert already posted is not posted
again; a resolution is posted only for an alert this notifier posted (one it
never showed needs no "resolved" note), and edits or threads under the
original when the Web API is in use. Redis is needed to decide, so while it
is unreachable delivery waits for it rather than guessing (a guess would
mean duplicate posts or lost resolutions); the gauge and the log say so.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from processor.notify import metrics
from processor.notify.blocks import (
    alert_message,
    digest_message,
    resolution_reply,
    resolved_alert_message,
)
from processor.notify.links import CrmLinks
from processor.notify.posted import PostedAlert, PostedStore
from processor.notify.records import AlertNotice, DigestNotice, Notice, ResolutionNotice
from processor.notify.retry import Backoff, SlackFailure
from processor.notify.routing import Routing
from processor.notify.slack import Posted, Transport
from schemas import Digest, datetime_to_ms

log = logging.getLogger(__name__)
T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
"""Waits, or raises Stopped when the notifier is asked to stop meanwhile."""


class Stopped(Exception):
    """The notifier is stopping: leave the record unfinished (uncommitted)."""


class DeliveryFailed(Exception):
    """Slack will not take this message: it goes to the dead-letter topic."""


@dataclass(frozen=True)
class Outcome:
    status: Literal["delivered", "skipped"]
    reason: str = ""


DELIVERED = Outcome("delivered")


def digest_id(digest: Digest) -> str:
    return f"{digest.owner_id}:{digest.period_start}:{datetime_to_ms(digest.generated_at)}"


@dataclass
class Delivery:
    transport: Transport
    store: PostedStore
    routing: Routing
    links: CrmLinks
    backoff: Backoff
    sleep: Sleep
    now: Callable[[], datetime]
    on_resolution: Literal["update", "thread", "both"] = "both"
    digest_top: int = 10
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        self._rng = self.rng or random.Random()

    async def handle(self, notice: Notice) -> Outcome:
        if isinstance(notice, AlertNotice):
            return await self._alert(notice)
        if isinstance(notice, ResolutionNotice):
            return await self._resolution(notice)
        return await self._digest(notice)

    # ---- the three kinds ----------------------------------------------------
    async def _alert(self, notice: AlertNotice) -> Outcome:
        alert = notice.alert
        if notice.delivery == "digest":
            return _skip("alert", "digest_delivery")
        if await self._redis(lambda: self.store.alert(alert.alert_id)) is not None:
            return _skip("alert", "already_posted")
        route = self.routing.route_for(alert.owner_id, alert.manager_id)
        message = alert_message(alert, self.links, self.now(), self.routing.mention(alert.owner_id))
        posted: Posted = await self._send("alert", alert.rule_id,
                                          lambda: self.transport.post(route, message))
        record = PostedAlert(route, posted.channel, posted.ts, alert)
        await self._redis(lambda: self.store.save_alert(record))
        metrics.DELIVERED.labels("alert", alert.rule_id).inc()
        return DELIVERED

    async def _resolution(self, notice: ResolutionNotice) -> Outcome:
        resolution = notice.resolution
        posted = await self._redis(lambda: self.store.alert(resolution.alert_id))
        if posted is None:
            return _skip("resolution", "alert_not_posted")
        if posted.resolved:
            return _skip("resolution", "already_resolved")
        alert, rule = posted.alert, resolution.rule_id
        reply = resolution_reply(resolution, alert, self.links)
        if self.transport.can_edit and posted.channel and posted.ts:
            channel, ts = posted.channel, posted.ts
            if self.on_resolution in ("update", "both"):
                edited = resolved_alert_message(alert, resolution, self.links, self.now())
                await self._send("resolution", rule,
                                 lambda: self.transport.update(channel, ts, edited))
            if self.on_resolution in ("thread", "both"):
                await self._send("resolution", rule, lambda: self.transport.post(
                    posted.route, reply, channel=channel, thread_ts=ts))
        else:
            await self._send("resolution", rule,
                             lambda: self.transport.post(posted.route, reply))
        await self._redis(lambda: self.store.mark_resolved(posted))
        metrics.DELIVERED.labels("resolution", rule).inc()
        return DELIVERED

    async def _digest(self, notice: DigestNotice) -> Outcome:
        digest = notice.digest
        key = digest_id(digest)
        if await self._redis(lambda: self.store.digest_posted(key)):
            return _skip("digest", "already_posted")
        route = self.routing.route_for(digest.owner_id, digest.manager_id)
        message = digest_message(digest, self.links, self.now(), top=self.digest_top,
                                 mention=self.routing.mention(digest.owner_id))
        await self._send("digest", "digest", lambda: self.transport.post(route, message))
        await self._redis(lambda: self.store.save_digest(key))
        metrics.DELIVERED.labels("digest", "digest").inc()
        return DELIVERED

    # ---- retrying -------------------------------------------------------------
    async def _send(self, kind: str, rule: str, call: Callable[[], Awaitable[T]]) -> T:
        failed = 0
        while True:
            try:
                return await call()
            except SlackFailure as failure:
                failed += 1
                why = self.backoff.gives_up(failure, failed)
                if why is not None:
                    metrics.FAILED.labels(kind, rule, failure.cause).inc()
                    raise DeliveryFailed(f"{failure.detail} ({why})") from failure
                delay = self.backoff.delay(failed, failure.retry_after, self._rng)
                metrics.RETRIED.labels(kind, rule, failure.cause).inc()
                log.info("slack %s (%s) failed: %s; retry %d in %.2fs", kind, rule,
                         failure.detail, failed, delay)
                await self.sleep(delay)

    async def _redis(self, call: Callable[[], Awaitable[T]]) -> T:
        failed = 0
        while True:
            try:
                result = await call()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                failed += 1
                if failed == 1:
                    log.warning("redis unreachable, delivery waits for it: %s", exc)
                metrics.REDIS_DEGRADED.set(1)
                await self.sleep(min(self.backoff.cap, self.backoff.base * 2 ** min(failed, 10)))
                continue
            if failed:
                log.warning("redis reachable again after %d failed attempts", failed)
                metrics.REDIS_DEGRADED.set(0)
            return result


def _skip(kind: str, reason: str) -> Outcome:
    metrics.SKIPPED.labels(kind, reason).inc()
    return Outcome("skipped", reason)
