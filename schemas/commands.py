"""Recommendations for the CRM, published on ``crm.commands``.

The product never writes to the CRM itself: a human or a separate, audited
integration decides whether to act on a command.
"""

from __future__ import annotations

from typing import Literal

from ._base import Record, UtcDatetime


class CloseOutCommand(Record):
    kind: Literal["close_out_recommendation"] = "close_out_recommendation"
    command_id: str
    opportunity_id: str
    opportunity_name: str | None = None
    owner_id: str | None = None
    pipeline: str
    current_stage: str | None
    recommended_stage: str
    amount: float | None = None
    currency: str | None = None
    days_without_activity: int
    last_activity_at: UtcDatetime | None
    issued_at: UtcDatetime
    ruleset_version: str
    reason: str
