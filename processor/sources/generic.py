"""Generic change events, for any CRM without a dedicated source:

``{"source": "pipedrive", "event_id": "...", "opportunity_id": "...",
"occurred_at": ISO-8601, "op": "upsert" | "delete" | "restore" | "activity",
"fields": {...}}`` plus optional ``nulled_fields``, ``contact_ids``, ``full``
and ``sequence``.

Producers write this format themselves, so it is held to the same strictness
as the published records: an unknown top-level key is a violation (a typo such
as ``"feilds"`` would otherwise lose every value silently), and values are not
coerced between types (``"full": "yes"`` is an error, not a guess). Field
names are canonical already; ``mappings.generic`` renames any that are not,
and unmapped fields are kept under their own name.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired

from pydantic import ConfigDict
from typing_extensions import TypedDict

from processor.sources.base import (
    Envelope,
    NonEmpty,
    Timestamp,
    VendorId,
    build_change,
    values_of,
)
from processor.sources.mapping import FieldMappings
from schemas.change import OpportunityChange

SOURCE_PREFIX: Final = "generic:"


class GenericEvent(TypedDict):
    """``op`` omits gap and merge: those are Salesforce and HubSpot notions."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    source: NonEmpty
    event_id: VendorId
    opportunity_id: VendorId
    occurred_at: Timestamp
    op: Literal["upsert", "delete", "restore", "activity"]
    fields: NotRequired[dict[NonEmpty, Any]]
    nulled_fields: NotRequired[list[NonEmpty]]
    contact_ids: NotRequired[list[VendorId]]
    full: NotRequired[bool]
    sequence: NotRequired[int]


_EVENT: Final = Envelope(GenericEvent)


def is_generic(obj: dict[str, Any]) -> bool:
    return "event_id" in obj or "opportunity_id" in obj


def normalize(event: dict[str, Any], mappings: FieldMappings) -> list[OpportunityChange]:
    valid = _EVENT.check(event)
    fields, nulled = _values(valid, mappings.generic)
    return [
        build_change(
            event_id=valid["event_id"],
            source=SOURCE_PREFIX + valid["source"],
            opportunity_id=valid["opportunity_id"],
            occurred_at=valid["occurred_at"],
            op=valid["op"],
            sequence=valid.get("sequence", 0),
            fields=fields,
            nulled_fields=nulled,
            full=valid.get("full", False),
            contact_ids=valid.get("contact_ids", []),
        )
    ]


def _values(event: GenericEvent, mapping: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    fields, nulled = values_of(
        event.get("fields", {}), mapping, where="fields", keep_unmapped=True
    )
    for name in event.get("nulled_fields", ()):
        canonical = mapping.get(name, name)
        fields.pop(canonical, None)
        if canonical not in nulled:
            nulled.append(canonical)
    return fields, nulled
