"""The weekly hygiene queue: one record per owner, ordered by deal size."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from ._base import Record, UtcDatetime
from .alerts import Severity


class QueueIssue(Record):
    alert_id: str
    rule_id: str
    severity: Severity
    title: str
    message: str
    fix: str
    opened_at: UtcDatetime


class QueueItem(Record):
    opportunity_id: str
    opportunity_name: str | None = None
    pipeline: str
    stage: str | None = None
    amount: float | None = None
    currency: str | None = None
    close_date: date | None = None
    issues: list[QueueIssue]


class Digest(Record):
    owner_id: str
    period_start: date = Field(description="First day of the week the queue covers.")
    generated_at: UtcDatetime
    ruleset_version: str
    opportunity_count: int
    issue_count: int
    amount_at_risk: float = Field(description="Sum of amounts of the listed opportunities.")
    items: list[QueueItem]
