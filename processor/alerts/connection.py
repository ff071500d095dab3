"""The Redis client of the alert policy, from the settings.

Short timeouts and no client-side retries: the caller (the policy's
breaker) decides when to try again, so a dead Redis never holds a batch for
more than one timeout.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from processor.alerts.policy import PolicyRules
from processor.settings import Settings


def redis_client(settings: Settings) -> Redis:
    timeout = settings.redis_socket_timeout_seconds
    password = settings.redis_password
    client: Redis = Redis.from_url(
        settings.redis_url,
        password=password.get_secret_value() if password is not None else None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    return client


def policy_rules(settings: Settings) -> PolicyRules:
    return PolicyRules(
        dedup_window_ms=int(settings.alert_dedup_window_seconds * 1000),
        daily_budget=settings.alert_daily_budget,
        timezone=settings.alert_budget_timezone,
        min_severity=settings.alert_min_severity,
        min_amount=settings.alert_min_amount,
        retention_ms=int(settings.alert_record_retention_days * 86_400_000),
    )
