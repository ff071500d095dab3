"""Per-opportunity state as the stream keeps it in its table.

The state keeps, besides the latest value of every field, a short timeline of
observations of the fields the forecast warehouse cares about. That timeline
is what makes the result independent of delivery order: a late event is
inserted where it belongs and the stage history is derived again, instead of
being appended after the fact.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, field_serializer, field_validator

from ._base import Record

Observation = tuple[int, str, dict[str, Any]]
"""(order stamp, event id, tracked field values carried by that event)."""


class Memo:
    """Derived data cached beside a state in memory, never serialized. A state
    read back from storage starts with an empty memo, and the engine then
    derives in full; so the memo can only save work, never change a result."""

    __slots__ = ("evaluated", "memberships", "walk")

    def __init__(self) -> None:
        self.walk: Any = None
        """The stage-history walk at the end of the timeline (core.timeline)."""
        self.evaluated: tuple[int, int | None] | None = None
        """(time of the last rule evaluation, when a time-driven verdict can
        next change): lets the engine re-run only the checks whose inputs
        changed (core.engine)."""
        self.memberships: Any = None
        """What the stream's regroupings last computed for this state (owner
        queue, rollup bucket), so a batch compares against it instead of
        computing it again before applying (stream.regroup)."""


class OpportunityState(Record):
    opportunity_id: str
    fields: dict[str, Any] = Field(default_factory=dict)
    stamps: dict[str, int] = Field(
        default_factory=dict, description="Field -> order stamp of the value held (LWW)."
    )
    timeline: list[Observation] = Field(default_factory=list)
    base: dict[str, Any] = Field(
        default_factory=dict,
        description="Tracked values folded out of the timeline when it outgrew its cap.",
    )
    base_stamp: int = 0
    stage_entered_ms: int | None = Field(
        default=None, description="Event time the current stage was entered (derived)."
    )
    close_pushes: int = Field(default=0, description="Times the close date moved later.")
    close_slip_days: int = Field(
        default=0, description="Days the close date moved from the first one seen (net)."
    )
    last_activity_ms: int | None = None
    contacts: list[str] = Field(default_factory=list)
    created_ms: int | None = None
    high_water_ms: int = Field(default=0, description="Latest event time seen.")
    gap_stamp: int = Field(default=0, description="Latest change the CRM could not deliver.")
    full_stamp: int = Field(default=0, description="Latest change that carried the whole record.")
    merged_into: str | None = None
    next_due_ms: int | None = Field(
        default=None,
        description="When a sweep next needs to evaluate this opportunity (set by the "
        "stream when it stores the state; None: not until an event arrives).",
    )
    open_alerts: dict[str, int] = Field(
        default_factory=dict,
        description="Rule id -> event time the alert opened; the alert id derives from it.",
    )

    @field_serializer("stamps")
    def _group_stamps(self, stamps: dict[str, int]) -> dict[str, list[str]]:
        # One event usually sets many fields (a Salesforce CREATE sets all of
        # them), so grouping fields by stamp roughly halves the stored state.
        grouped: dict[str, list[str]] = {}
        for name, stamp in stamps.items():
            grouped.setdefault(str(stamp), []).append(name)
        return grouped

    @field_validator("stamps", mode="before")
    @classmethod
    def _ungroup_stamps(cls, value: Any) -> Any:
        if isinstance(value, dict) and any(isinstance(v, list) for v in value.values()):
            return {name: int(stamp) for stamp, names in value.items() for name in names}
        return value

    _memo: Memo = PrivateAttr(default_factory=lambda: Memo())

    @property
    def memo(self) -> Memo:
        """What the engine derived last time, kept beside the state in memory
        only (a plain slot object: pydantic's private-attribute lookup costs
        more than the work it would save)."""
        return self.__pydantic_private__["_memo"]  # type: ignore[index, no-any-return]

    @property
    def needs_resync(self) -> bool:
        return self.gap_stamp > self.full_stamp
