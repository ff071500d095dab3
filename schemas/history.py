"""Stage-history records for the forecast warehouse.

``record_id`` is derived from the opportunity and the event that caused the
transition, so a sink connector upserting on it absorbs redeliveries and
replays; a late event that changes an earlier transition re-publishes the
record under the same id, and one that makes a transition disappear publishes
it again with ``retracted`` set.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from ._base import Record, UtcDatetime

TransitionType = Literal["created", "stage_changed", "category_changed", "deleted", "restored"]
"""``category_changed``: the forecast category moved within one stage
(previous_stage == new_stage); stage intervals are built from the others."""


class StageHistoryRecord(Record):
    record_id: str
    opportunity_id: str
    pipeline: str
    transition: TransitionType
    previous_stage: str | None
    new_stage: str | None
    previous_stage_entered_at: UtcDatetime | None
    previous_stage_left_at: UtcDatetime | None
    seconds_in_previous_stage: int | None
    transitioned_at: UtcDatetime = Field(description="Event time of the transition in the CRM.")
    event_order: int = Field(
        default=0,
        description="Orders one opportunity's transitions exactly: event time, then the "
        "CRM's sequence (or a hash of the event id) for changes within one millisecond. "
        "Sort by this, not by transitioned_at alone.",
    )
    amount: float | None = None
    currency: str | None = None
    close_date: date | None = None
    forecast_category: str | None = None
    owner_id: str | None = None
    is_closed: bool = False
    is_won: bool = False
    close_date_push_count: int = 0
    source_event_id: str
    retracted: bool = Field(
        default=False,
        description="A late event showed this transition never happened; delete it downstream.",
    )
