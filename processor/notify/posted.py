"""What this notifier has posted, in Redis, shared by every instance.

An alert's entry holds where it was posted (route, and with the Web API the
channel and ``ts``) and the alert itself, so that its resolution can edit
the message long after, on any instance, after any restart. The entry is
written right after Slack accepts the post and checked before posting, so a
record read again after a crash or a rebalance is not posted twice; only a
crash between Slack's answer and this write can repeat one message.
Entries expire (``HYGIENE_SLACK_POSTED_TTL_DAYS``) so Redis does not grow
with every alert ever raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from schemas import Alert


@dataclass(frozen=True)
class PostedAlert:
    route: str
    channel: str | None
    ts: str | None
    alert: Alert
    resolved: bool = False

    def encode(self) -> bytes:
        return orjson.dumps({
            "route": self.route, "channel": self.channel, "ts": self.ts,
            "resolved": self.resolved, "alert": self.alert.model_dump(mode="json"),
        })

    @classmethod
    def decode(cls, raw: bytes) -> PostedAlert:
        obj: dict[str, Any] = orjson.loads(raw)
        return cls(route=obj["route"], channel=obj.get("channel"), ts=obj.get("ts"),
                   alert=Alert.model_validate(obj["alert"]), resolved=bool(obj.get("resolved")))


class PostedStore:
    def __init__(self, client: aioredis.Redis, prefix: str, ttl_seconds: int) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _alert_key(self, alert_id: str) -> str:
        return f"{self._prefix}alert:{alert_id}"

    def _digest_key(self, digest_id: str) -> str:
        return f"{self._prefix}digest:{digest_id}"

    async def alert(self, alert_id: str) -> PostedAlert | None:
        raw = await self._redis.get(self._alert_key(alert_id))
        return PostedAlert.decode(raw) if raw is not None else None

    async def save_alert(self, posted: PostedAlert) -> None:
        await self._redis.set(self._alert_key(posted.alert.alert_id), posted.encode(),
                              ex=self._ttl)

    async def mark_resolved(self, posted: PostedAlert) -> None:
        resolved = PostedAlert(posted.route, posted.channel, posted.ts, posted.alert, True)
        # KEEPTTL: a resolution does not extend how long the alert is remembered.
        await self._redis.set(self._alert_key(posted.alert.alert_id), resolved.encode(),
                              keepttl=True)

    async def digest_posted(self, digest_id: str) -> bool:
        return bool(await self._redis.exists(self._digest_key(digest_id)))

    async def save_digest(self, digest_id: str) -> None:
        await self._redis.set(self._digest_key(digest_id), b"1", ex=self._ttl)
