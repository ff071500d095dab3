"""The weekly hygiene queue: one record per owner, ordered by deal size."""

from __future__ import annotations

from collections.abc import Iterable
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
    snoozed_until: UtcDatetime | None = Field(
        default=None,
        description="Set while the owner's snooze of this alert runs (alert policy on): still "
        "listed, so nothing vanishes, but a notifier leaves it out until then.",
    )


class QueueItem(Record):
    opportunity_id: str
    opportunity_name: str | None = None
    pipeline: str
    stage: str | None = None
    amount: float | None = None
    currency: str | None = None
    close_date: date | None = None
    manager_id: str | None = Field(
        default=None, description="The owner's manager on this opportunity (CRM field).")
    issues: list[QueueIssue]


NO_CURRENCY = "unspecified"
"""The ``amount_at_risk_by_currency`` key for amounts whose currency is unknown."""


class Digest(Record):
    owner_id: str
    manager_id: str | None = Field(
        default=None,
        description="The owner's manager: the one most of the listed opportunities name "
        "(ties: the smallest id). Lets a notifier route a team's digests as its alerts.",
    )
    period_start: date = Field(description="First day of the week the queue covers.")
    generated_at: UtcDatetime
    ruleset_version: str
    opportunity_count: int
    issue_count: int
    amount_at_risk: float = Field(
        description="Sum of amounts of the listed opportunities, whatever their currency: "
        "read amount_at_risk_by_currency when deals are in several.")
    amount_at_risk_by_currency: dict[str, float] = Field(
        default_factory=dict,
        description=f"The same sum per currency code ({NO_CURRENCY!r}: currency unknown).")
    items: list[QueueItem]


def amounts_by_currency(items: Iterable[QueueItem]) -> dict[str | None, float]:
    """The items' known amounts summed per currency (None: currency unknown),
    never across currencies: the digest's totals and a notifier's alike."""
    sums: dict[str | None, float] = {}
    for item in items:
        if item.amount is not None:
            sums[item.currency] = sums.get(item.currency, 0.0) + item.amount
    return sums
