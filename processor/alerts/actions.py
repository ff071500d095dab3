"""What an owner does with an alert: snooze it or acknowledge it.

For the HTTP API (``POST /v1/alerts/{alert_id}/snooze`` and ``/ack``)::

    actions = AlertActions.from_settings(settings)     # once per worker
    status = await actions.snooze(alert_id, by="005REP", reason="on leave",
                                  until=datetime(2026, 3, 1, tzinfo=UTC))
    status = await actions.ack(alert_id, by="005REP")
    status = await actions.status(alert_id)             # None: unknown alert
    return web.json(status.model_dump(mode="json"))

``alert_id`` is the ``alert_id`` of the published Alert record. Each call
is one atomic Redis call and returns the alert's :class:`schemas.AlertStatus`
as stored after it, including every snooze and ack so far (who, when, why,
until when). Errors the API maps to responses:

- :class:`UnknownAlert` (404): the policy never decided this alert id (the
  policy is off, the id is wrong, or the record passed its retention);
- :class:`InvalidAction` (422): a snooze whose expiry is not in the future,
  or an empty ``by``;
- ``redis.exceptions.RedisError`` / ``OSError`` (503): Redis unreachable.

A snooze covers the opportunity and rule of the alert: until it expires,
later alerts for them are published for the digest only (reason
``snoozed``). An acknowledgement changes no decision; the first one is kept
and timed (``hygiene_alert_ack_seconds``), later ones are only logged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from processor.alerts import metrics
from processor.alerts.connection import policy_rules, redis_client
from processor.alerts.shell import wall_ms
from processor.alerts.store import ACK, SNOOZE, Keys
from processor.settings import Settings
from schemas import AlertAction, AlertStatus, datetime_to_ms, ms_to_datetime


class UnknownAlert(LookupError):
    """The alert policy holds no record of this alert id."""


class InvalidAction(ValueError):
    """The request cannot be recorded as asked."""


class AlertActions:
    def __init__(
        self,
        client: Redis,
        prefix: str,
        retention_ms: int,
        *,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.prefix = prefix
        self.retention_ms = retention_ms
        self.clock = clock
        self._snooze = client.register_script(SNOOZE)
        self._ack = client.register_script(ACK)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertActions:
        return cls(redis_client(settings), settings.alert_policy_prefix,
                   policy_rules(settings).retention_ms)

    async def snooze(self, alert_id: str, by: str, reason: str, until: datetime) -> AlertStatus:
        now = self.clock()
        until_ms = datetime_to_ms(until)
        if not by.strip():
            raise InvalidAction("who snoozes must be given")
        if until_ms <= now:
            raise InvalidAction(f"snooze expiry {until.isoformat()} is not in the future")
        answer = await self._snooze(
            [self.keys.alert(alert_id), self.keys.actions(alert_id)],
            [self.prefix, now, by, reason, until_ms, self.retention_ms, alert_id],
        )
        if answer is None:
            raise UnknownAlert(alert_id)
        metrics.SNOOZES.inc()
        return status_of(alert_id, answer[1], answer[2])

    async def ack(self, alert_id: str, by: str) -> AlertStatus:
        if not by.strip():
            raise InvalidAction("who acknowledges must be given")
        answer = await self._ack(
            [self.keys.alert(alert_id), self.keys.actions(alert_id)],
            [self.clock(), by, self.retention_ms],
        )
        if answer is None:
            raise UnknownAlert(alert_id)
        status = status_of(alert_id, answer[1], answer[2])
        if answer[0] == 1:
            metrics.ACKS.inc()
            assert status.acknowledged_at is not None
            metrics.TIME_TO_ACK.observe(
                (status.acknowledged_at - status.first_seen_at).total_seconds()
            )
        return status

    async def snoozed(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(opportunity, rule) -> when its running snooze ends (epoch ms), for
        the keys snoozed now: one round trip for a whole digest run."""
        if not keys:
            return {}
        now = self.clock()
        async with self.client.pipeline(transaction=False) as pipe:
            for opportunity_id, rule_id in keys:
                pipe.pttl(self.keys.snooze(opportunity_id, rule_id))
            left = await pipe.execute()
        return {key: now + int(ms) for key, ms in zip(keys, left, strict=True) if int(ms) > 0}

    async def status(self, alert_id: str) -> AlertStatus | None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.alert(alert_id))
            pipe.lrange(self.keys.actions(alert_id), 0, -1)
            found, log = await pipe.execute()
        if not found:
            return None
        return status_of(alert_id, found, log)


def status_of(alert_id: str, stored: Any, log: Sequence[str]) -> AlertStatus:
    """Reads the alert hash (a mapping, or the flat list a script returns)."""
    if isinstance(stored, list):
        stored = dict(zip(stored[::2], stored[1::2], strict=True))
    fields: dict[str, str] = stored

    def when(name: str) -> datetime | None:
        value = fields.get(name)
        return ms_to_datetime(int(value)) if value else None

    return AlertStatus(
        alert_id=alert_id,
        opportunity_id=fields["opportunity_id"],
        rule_id=fields["rule_id"],
        owner_id=fields.get("owner_id") or None,
        first_seen_at=ms_to_datetime(int(fields["first_seen_ms"])),
        delivery=fields["delivery"],
        delivery_reason=fields.get("delivery_reason") or None,
        duplicate_of=fields.get("duplicate_of") or None,
        resolved_at=when("resolved_ms"),
        acknowledged_by=fields.get("acknowledged_by"),
        acknowledged_at=when("acknowledged_ms"),
        snoozed_by=fields.get("snoozed_by"),
        snoozed_at=when("snoozed_ms"),
        snoozed_until=when("snoozed_until_ms"),
        snooze_reason=fields.get("snooze_reason"),
        actions=[_action(orjson.loads(entry)) for entry in log],
    )


def _action(entry: dict[str, Any]) -> AlertAction:
    until = entry.get("until")
    return AlertAction(
        action=entry["action"],
        by=entry["by"],
        at=ms_to_datetime(int(entry["at"])),
        reason=entry.get("reason"),
        until=ms_to_datetime(int(until)) if until is not None else None,
    )
