"""Prometheus metrics of the alert policy (served on /metrics by the workers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SUPPRESSED = Counter(
    "hygiene_alerts_suppressed_total",
    "Alerts not published at all (duplicate: a repeat of an open alert)",
    ["rule", "reason"],
)
DIGEST_ONLY = Counter(
    "hygiene_alerts_digest_only_total",
    "Alerts published for the digest only, not for real-time notification",
    ["rule", "reason"],
)
SNOOZES = Counter("hygiene_alert_snoozes_total", "Alerts snoozed")
ACKS = Counter("hygiene_alert_acks_total", "Alerts acknowledged (first acknowledgement only)")
TIME_TO_ACK = Histogram(
    "hygiene_alert_ack_seconds",
    "From the policy's first decision on an alert to its first acknowledgement",
    buckets=(60, 300, 900, 3_600, 4 * 3_600, 8 * 3_600, 86_400, 2 * 86_400, 7 * 86_400),
)
DECIDE_SECONDS = Histogram(
    "hygiene_alert_policy_seconds",
    "One batch's decision call to Redis",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
REDIS_DEGRADED = Gauge(
    "hygiene_redis_degraded",
    "1 while the alert policy cannot reach Redis (alerts flow unchecked, maybe repeated)",
)
