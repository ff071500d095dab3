"""Alerts and their resolutions, published together on ``hygiene.alerts``.

A resolution carries the alert id so that a notifier can update the message it
posted instead of posting a second one.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field

from ._base import Record, UtcDatetime

Severity = Literal["info", "low", "medium", "high"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3}
Delivery = Literal["realtime", "digest"]
DeliveryReason = Literal[
    "over_budget", "below_severity", "below_amount", "snoozed", "policy_unavailable"
]
"""What the policy writes in ``Alert.delivery_reason`` (the field is a plain
string in the contract, so that a new reason does not break readers)."""


class Alert(Record):
    kind: Literal["alert"] = "alert"
    alert_id: str = Field(description="Deterministic: the same condition episode keeps its id.")
    opportunity_id: str
    opportunity_name: str | None = None
    pipeline: str
    stage: str | None = None
    owner_id: str | None = None
    manager_id: str | None = None
    amount: float | None = None
    currency: str | None = None
    close_date: date | None = None
    rule_id: str
    ruleset_version: str
    severity: Severity
    title: str
    message: str = Field(description="What is wrong, in words a rep reads.")
    fix: str = Field(description="How to fix it.")
    details: dict[str, Any] = Field(default_factory=dict)
    opened_at: UtcDatetime
    source_event_id: str | None = None
    delivery: Delivery = Field(
        default="realtime",
        description="realtime: notify the owner now; digest: list it in the weekly digest only.",
    )
    delivery_reason: str | None = Field(
        default=None,
        description="Why an alert went to the digest only: over_budget, below_severity, "
        "below_amount or snoozed (readers must accept others). On a realtime alert, "
        "policy_unavailable says the alert policy (Redis) could not be asked, so it may "
        "repeat and was not counted against the owner's budget.",
    )


class Resolution(Record):
    kind: Literal["resolution"] = "resolution"
    alert_id: str
    opportunity_id: str
    owner_id: str | None = None
    rule_id: str
    ruleset_version: str
    resolved_at: UtcDatetime
    reason: str
    source_event_id: str | None = None


AlertRecord = Alert | Resolution


class AlertAction(Record):
    """One snooze or acknowledgement, as recorded by the alert policy."""

    action: Literal["snooze", "ack"]
    by: str
    at: UtcDatetime
    reason: str | None = None
    until: UtcDatetime | None = None


class AlertStatus(Record):
    """What the alert policy knows about one alert: how it was delivered and
    what its owner did with it. Served by the HTTP API after a snooze or ack."""

    alert_id: str
    opportunity_id: str
    rule_id: str
    owner_id: str | None = None
    first_seen_at: UtcDatetime = Field(description="When the policy first decided this alert.")
    delivery: Literal["realtime", "digest", "suppressed"] = Field(
        description="suppressed: a repeat of an open alert, never published."
    )
    delivery_reason: str | None = None
    duplicate_of: str | None = Field(
        default=None, description="For a suppressed repeat: the alert it repeated."
    )
    resolved_at: UtcDatetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: UtcDatetime | None = None
    snoozed_by: str | None = None
    snoozed_at: UtcDatetime | None = None
    snoozed_until: UtcDatetime | None = None
    snooze_reason: str | None = None
    actions: list[AlertAction] = Field(default_factory=list, description="Oldest first.")
