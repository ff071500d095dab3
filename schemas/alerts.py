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
