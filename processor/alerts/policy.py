"""The alert policy's pure core: what may interrupt a rep in real time.

Automation shame is the failure this guards against: too many alerts and
reps stop reading them. Everything here is decided without Redis and without
a clock (time comes in as an argument), so the thresholds and the reading of
the shared state's answers can be tested on their own; ``store.py`` holds the
Redis side (dedup window, daily budgets, snoozes) and ``shell.py`` joins them.

Per alert, in this order:
1. a repeat (the same alert id seen before, or another alert for the same
   opportunity and rule while one is open within the dedup window) is not
   published at all;
2. below the severity or deal-size threshold: published, digest only;
3. snoozed (same opportunity and rule, snooze not expired): digest only;
4. over the owner's budget of real-time alerts for the day: digest only;
5. otherwise: real time.
Resolutions always pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from schemas import Alert, AlertRecord, DeliveryReason
from schemas.alerts import SEVERITY_RANK

Verdict = Literal["realtime", "digest", "duplicate"]

UNOWNED = "-"
"""Budget owner of alerts without an owner id: they share one budget."""


@dataclass(frozen=True)
class PolicyRules:
    dedup_window_ms: int
    daily_budget: int
    timezone: str
    min_severity: str
    min_amount: float
    retention_ms: int


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: DeliveryReason | None = None
    duplicate_of: str | None = None


def threshold_reason(alert: Alert, rules: PolicyRules) -> DeliveryReason | None:
    """Why an alert can never be real time whatever Redis says, or None.

    An unknown amount is never "below": the missing amount may be the very
    thing the alert is about."""
    if SEVERITY_RANK[alert.severity] < SEVERITY_RANK[rules.min_severity]:
        return "below_severity"
    if rules.min_amount > 0 and alert.amount is not None and alert.amount < rules.min_amount:
        return "below_amount"
    return None


def budget_day(now_ms: int, timezone: str) -> tuple[str, int]:
    """The owner's budget day at ``now_ms`` and how long its counter must
    live: until the day ends in that zone, plus a day of slack so a worker
    with a slightly late clock still finds it."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now_ms / 1000, tz=zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone) + timedelta(days=1)
    left_ms = int(midnight.timestamp() * 1000) - now_ms
    return local.date().isoformat(), left_ms + 86_400_000


def owner_of(alert: Alert) -> str:
    return alert.owner_id or UNOWNED


def degraded(records: list[AlertRecord], rules: PolicyRules) -> list[AlertRecord]:
    """What is published when Redis cannot be asked: every alert still flows
    (at worst repeated, and not counted against a budget), with the
    thresholds applied since they need no shared state."""
    out: list[AlertRecord] = []
    for record in records:
        if isinstance(record, Alert):
            below = threshold_reason(record, rules)
            record = mark(record, Decision("digest", below) if below is not None
                          else Decision("realtime", "policy_unavailable"))
        out.append(record)
    return out


def mark(alert: Alert, decision: Decision) -> Alert:
    """The alert as published under ``decision`` (never called for duplicates)."""
    if decision.verdict == "realtime" and decision.reason is None:
        return alert
    delivery: Literal["realtime", "digest"] = (
        "digest" if decision.verdict == "digest" else "realtime"
    )
    return alert.model_copy(update={"delivery": delivery, "delivery_reason": decision.reason})


def published(
    records: list[AlertRecord], decisions: list[Decision | None]
) -> list[AlertRecord]:
    """The records to publish: duplicates dropped, alerts marked with their
    delivery; ``decisions`` holds None for each resolution."""
    out: list[AlertRecord] = []
    for record, decision in zip(records, decisions, strict=True):
        if isinstance(record, Alert):
            assert decision is not None
            if decision.verdict == "duplicate":
                continue
            record = mark(record, decision)
        out.append(record)
    return out
