"""Builders shared by the alert policy tests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from processor.alerts.policy import PolicyRules
from schemas import Alert, Resolution

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def rules(**overrides: Any) -> PolicyRules:
    values: dict[str, Any] = {
        "dedup_window_ms": 3_600_000,
        "daily_budget": 5,
        "timezone": "UTC",
        "min_severity": "low",
        "min_amount": 0.0,
        "retention_ms": 86_400_000,
    }
    values.update(overrides)
    return PolicyRules(**values)


def alert(
    alert_id: str = "al_1",
    opp: str = "006A",
    rule: str = "missing_next_step",
    owner: str | None = "005REP",
    severity: str = "medium",
    amount: float | None = 50_000.0,
) -> Alert:
    return Alert(
        alert_id=alert_id,
        opportunity_id=opp,
        pipeline="default",
        owner_id=owner,
        amount=amount,
        rule_id=rule,
        ruleset_version="test",
        severity=severity,  # type: ignore[arg-type]
        title="Next step missing",
        message="No next step",
        fix="Add one",
        opened_at=T0,
    )


def resolution(alert_id: str = "al_1", opp: str = "006A", rule: str = "missing_next_step"
               ) -> Resolution:
    return Resolution(
        alert_id=alert_id,
        opportunity_id=opp,
        rule_id=rule,
        ruleset_version="test",
        resolved_at=T0,
        reason="fixed",
    )


async def sent_commands(url: str, action: Callable[[], Awaitable[object]]) -> list[str]:
    """The commands clients sent to Redis while ``action`` ran (MONITOR; the
    commands its scripts ran are left out)."""
    probe: Redis = Redis.from_url(url, decode_responses=True)
    marker: Redis = Redis.from_url(url, decode_responses=True)
    end = f"end-{time.monotonic_ns()}"
    sent: list[str] = []
    async with probe.monitor() as monitor:
        await action()
        await marker.echo(end)
        while True:
            command = await monitor.next_command()
            if command["command"] == f"ECHO {end}":
                break
            if command["client_type"] != "lua":
                sent.append(command["command"])
    await probe.aclose()
    await marker.aclose()
    return sent
