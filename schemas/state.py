"""Per-opportunity state as the stream keeps it in its table.

The state keeps, besides the latest value of every field, a short timeline of
observations of the fields the forecast warehouse cares about. That timeline
is what makes the result independent of delivery order: a late event is
inserted where it belongs and the stage history is derived again, instead of
being appended after the fact.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import Field, PrivateAttr, field_serializer, model_validator
from typing_extensions import TypedDict

from ._base import Record

Observation = tuple[int, str, dict[str, Any]]
"""(order stamp, event id, tracked field values carried by that event)."""


class PackedTimeline(TypedDict):
    """The stored form of a timeline: ``base`` is the first observation's
    order stamp, and each observation in ``obs`` is ``[delta, values]``,
    ``[delta, event id, values]`` or ``[delta, [before, after], values]``
    (an event id containing the opportunity id, cut out), where delta is
    the stamp minus the previous observation's (the first's: 0). Field
    stamps beside a packed timeline are relative to ``base`` too."""

    base: int
    obs: list[list[Any]]


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
    def _pack_stamps(self, stamps: dict[str, int]) -> dict[str, list[str]]:
        return pack_stamps(stamps, _base_of(self.timeline))

    @field_serializer("timeline")
    def _pack_timeline(self, timeline: list[Observation]) -> PackedTimeline | list[Any]:
        return pack_timeline(timeline, self.opportunity_id) if timeline else []

    @model_validator(mode="before")
    @classmethod
    def _unpack(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return unpack(data)
        return data

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


# ---- the stored form -------------------------------------------------------------
#
# A state is written to the table (and its changelog) on every batch that
# touches it, and a million of them are read back on recovery, so its bytes
# are packed, still as plain JSON a person can read:
#
# - the timeline becomes {"base": first stamp, "obs": [...]} with each
#   observation's stamp as the difference from the one before (event times
#   close together, so a few digits instead of nineteen), its event id left
#   out when it names nothing (``core.timeline.observation_id``), and the
#   opportunity id cut out of the ids that contain it ([before, after]);
# - field stamps are grouped by stamp (one event usually sets many fields)
#   and, next to a packed timeline, written relative to its base.
#
# A list timeline and absolute stamps (the form written before) still load.



def _base_of(timeline: list[Observation]) -> int:
    return timeline[0][0] if timeline else 0


def pack_timeline(timeline: list[Observation], opportunity_id: str) -> PackedTimeline:
    base = previous = timeline[0][0]
    packed: list[list[Any]] = []
    for stamp, event_id, values in timeline:
        delta = stamp - previous
        previous = stamp
        if not event_id:
            packed.append([delta, values])
        elif opportunity_id and opportunity_id in event_id:
            before, _, after = event_id.partition(opportunity_id)
            packed.append([delta, [before, after], values])
        else:
            packed.append([delta, event_id, values])
    return {"base": base, "obs": packed}


def pack_stamps(stamps: dict[str, int], base: int) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, stamp in stamps.items():
        key = str(stamp - base)
        names = grouped.get(key)
        if names is None:
            grouped[key] = [name]
        else:
            names.append(name)
    return grouped


def unpack(data: dict[str, Any]) -> dict[str, Any]:
    """The stored form back into the model's fields (legacy forms pass)."""
    packed = data.get("timeline")
    stamps = data.get("stamps")
    grouped = isinstance(stamps, dict) and any(isinstance(v, list) for v in stamps.values())
    if not isinstance(packed, dict) and not grouped:
        return data
    data = dict(data)  # the caller's dict stays as it was
    base = 0
    if isinstance(packed, dict):
        base = packed["base"]
        data["timeline"] = _unpack_timeline(packed, data.get("opportunity_id", ""))
    if grouped:
        assert isinstance(stamps, dict)
        data["stamps"] = {name: int(stamp) + base
                          for stamp, names in stamps.items() for name in names}
    return data


def _unpack_timeline(packed: dict[str, Any], opportunity_id: str) -> list[Any]:
    stamp = packed["base"]
    timeline: list[Any] = []
    for observation in packed["obs"]:
        stamp += observation[0]
        if len(observation) == 2:
            timeline.append((stamp, "", observation[1]))
            continue
        event_id = observation[1]
        if isinstance(event_id, list):
            event_id = opportunity_id.join(event_id)
        timeline.append((stamp, event_id, observation[2]))
    return timeline


_DEFAULTS: dict[str, Any] = {
    name: info.get_default(call_default_factory=True)
    for name, info in OpportunityState.model_fields.items()
}


def state_to_json(state: OpportunityState) -> bytes:
    """What ``model_dump_json(exclude_defaults=True)`` writes, at about a
    third of its cost (the state is written once per batch that touches it);
    ``tests/schemas`` holds the two equal."""
    out: dict[str, Any] = {}
    for name, value in state.__dict__.items():
        if value != _DEFAULTS[name]:
            out[name] = value
    timeline = state.timeline
    if timeline:
        out["timeline"] = pack_timeline(timeline, state.opportunity_id)
    if state.stamps:
        out["stamps"] = pack_stamps(state.stamps, _base_of(timeline))
    return orjson.dumps(out)


def state_from_json(raw: bytes) -> OpportunityState:
    return OpportunityState.model_validate_json(raw)
