"""Salesforce Change Data Capture: ``OpportunityChangeEvent``, and
``TaskChangeEvent`` / ``EventChangeEvent`` as activity on an opportunity.

Accepted as JSON the way the usual bridges put it on Kafka: the bare change
event (Pub/Sub API clients), the event under ``payload`` (Kafka Connect with
schemas, ``{"replayId": ..., "payload": ...}`` from Pub/Sub clients), and the
CometD/Streaming API message ``{"channel": ..., "data": {"schema": ...,
"payload": ..., "event": {"replayId": ...}}}``.

Nulls: the Pub/Sub API sends every field and nulls the unchanged ones, so a
null there says nothing; the fields that were cleared are listed in the
header's ``nulledFields``. So when the header has ``nulledFields``, only that
list clears fields (plus every null of a CREATE/UNDELETE, which carry the
whole record); when it has none (Streaming API bridges that send only changed
fields), a null value means cleared. Pub/Sub bitmaps (``"0x..."``) in
``nulledFields`` or ``diffFields`` cannot be read without the Avro schema and
are rejected: the bridge must expand them (``ChangeEventHeaderUtility``).

Only mapped fields are kept (``FieldMappings``); system fields never are.
A field listed in ``diffFields`` carries a unified diff, not a value, so it is
left out of the change (the old value stands until the next full record).
Compound fields (``BillingAddress: {"City": ...}``) are flattened to the
dotted names ``changedFields`` uses (``BillingAddress.City``), so a mapping can
name a component.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, NotRequired

from pydantic import AfterValidator
from typing_extensions import TypedDict

from processor.sources.base import (
    STRICT,
    Envelope,
    InputError,
    NonEmpty,
    build_change,
    utc_from_ms,
    values_of,
    violation,
)
from processor.sources.mapping import SALESFORCE_SYSTEM_FIELDS, FieldMappings
from schemas.change import ChangeOp, OpportunityChange

SOURCE: Final = "salesforce"
HEADER: Final = "ChangeEventHeader"
OPPORTUNITY_PREFIX: Final = "006"
CONTACT_PREFIX: Final = "003"
EMPTY_RECORD_ID: Final = "000000000000000AAA"
"""What a GAP_OVERFLOW event carries instead of record ids."""

ChangeType = Literal[
    "CREATE", "UPDATE", "DELETE", "UNDELETE",
    "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW",
]

_OPPORTUNITY_OPS: Final[dict[str, tuple[ChangeOp, bool]]] = {
    "CREATE": ("upsert", True),
    "UPDATE": ("upsert", False),
    "DELETE": ("delete", False),
    "UNDELETE": ("restore", True),
    "GAP_CREATE": ("gap", False),
    "GAP_UPDATE": ("gap", False),
    "GAP_DELETE": ("gap", False),
    "GAP_UNDELETE": ("gap", False),
    "GAP_OVERFLOW": ("gap", False),
}
"""changeType -> (op, whether the event carries the whole record)."""

_ACTIVITY_ENTITIES: Final = frozenset({"Task", "Event"})
_ACTIVITY_CHANGES: Final = frozenset({"CREATE", "UPDATE"})
"""A task or meeting created or worked on is a touch; deleting, restoring or a
gap on one is not evidence of engagement, so those are ignored (counted)."""

_AVRO_UNION_TYPES: Final = frozenset(
    {"string", "int", "long", "float", "double", "boolean", "bytes"}
)


def _field_names(names: list[str]) -> list[str]:
    for name in names:
        if name.startswith("0x") or "-0x" in name:
            raise ValueError(
                f"holds Pub/Sub bitmap {name!r}, not field names; expand the bitmaps in the "
                "bridge (ChangeEventHeaderUtility.process_bitmap) before producing"
            )
    return names


FieldNames = Annotated[list[str], AfterValidator(_field_names)]


class ChangeEventHeader(TypedDict):
    """The header keys this source reads (Salesforce sends more)."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    entityName: NonEmpty
    recordIds: list[str]
    changeType: ChangeType
    commitTimestamp: int
    sequenceNumber: int
    transactionKey: NonEmpty
    nulledFields: NotRequired[FieldNames]
    diffFields: NotRequired[FieldNames]


class ChangeEvent(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    ChangeEventHeader: ChangeEventHeader


_EVENT: Final = Envelope(ChangeEvent)


def unwrap(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The change event inside whichever envelope carries it, or None when
    ``obj`` is not a Salesforce change event. Cheap key checks only: this is
    also how ``detect`` recognizes the format."""
    if HEADER in obj:
        return obj
    payload = obj.get("payload")
    if type(payload) is dict and HEADER in payload:
        return payload
    data = obj.get("data")
    if type(data) is dict:
        if HEADER in data:
            return data
        payload = data.get("payload")
        if type(payload) is dict and HEADER in payload:
            return payload
    return None


def normalize(event: dict[str, Any], mappings: FieldMappings) -> list[OpportunityChange]:
    """One change per record id, because Salesforce merges identical changes to
    several records of a transaction into one event. ``event`` is the change
    event itself (see ``unwrap``)."""
    header = _EVENT.check(event)[HEADER]
    entity = header["entityName"]
    if entity == "Opportunity":
        return _opportunity(event, header, mappings)
    if entity in _ACTIVITY_ENTITIES:
        return _activity(event, header)
    raise InputError(
        "unsupported_entity",
        f"{HEADER}.entityName: {entity!r} is not handled "
        "(only Opportunity, and Task/Event as activity on an opportunity)",
    )


def _event_id(header: ChangeEventHeader, record_id: str) -> str:
    return f"sf:{header['transactionKey']}:{header['sequenceNumber']}:{record_id}"


def _occurred_at(header: ChangeEventHeader) -> datetime:
    return utc_from_ms(header["commitTimestamp"], f"{HEADER}.commitTimestamp")


def _records(header: ChangeEventHeader) -> list[str]:
    """The record ids a change can be attributed to. Salesforce also sends
    entity-wide events (GAP_OVERFLOW with the empty id, ``006*`` after a field
    type conversion) that name no record: those need a full resync, which one
    change record cannot express, so they are dead-lettered."""
    record_ids = header["recordIds"]
    ids = [r for r in record_ids if r and r != EMPTY_RECORD_ID and not r.endswith("*")]
    if ids:
        return ids
    if record_ids:
        entity, change_type = header["entityName"], header["changeType"]
        raise InputError(
            "unsupported_entity",
            f"{HEADER}.recordIds: {change_type} for {entity} names no single record "
            f"({record_ids!r}); it covers every record of the entity, so resync "
            f"{entity} from a bulk export",
        )
    raise violation(f"{HEADER}.recordIds", "expected at least one record id, got none")


def _opportunity(
    event: dict[str, Any], header: ChangeEventHeader, mappings: FieldMappings
) -> list[OpportunityChange]:
    change_type = header["changeType"]
    op, full = _OPPORTUNITY_OPS[change_type]
    ids = _records(header)
    occurred_at = _occurred_at(header)
    sequence = header["sequenceNumber"]
    fields: dict[str, Any] = {}
    nulled: list[str] = []
    if op in ("upsert", "restore"):
        fields, nulled = _values(event, header, mappings.salesforce, full)
    gap_type = change_type if op == "gap" else None
    return [
        build_change(
            event_id=_event_id(header, record_id),
            source=SOURCE,
            opportunity_id=record_id,
            occurred_at=occurred_at,
            sequence=sequence,
            op=op,
            fields=fields if i == 0 else dict(fields),
            nulled_fields=nulled if i == 0 else list(nulled),
            full=full,
            gap_type=gap_type,
        )
        for i, record_id in enumerate(ids)
    ]


def _values(
    event: dict[str, Any], header: ChangeEventHeader, mapping: dict[str, str], full: bool
) -> tuple[dict[str, Any], list[str]]:
    reports_nulls = "nulledFields" in header  # see the module doc
    fields, nulled = values_of(
        flatten(event), mapping, SALESFORCE_SYSTEM_FIELDS, none_is_null=full or not reports_nulls
    )
    for name in header.get("nulledFields", ()):
        canonical = mapping.get(name)
        if canonical is not None and name not in SALESFORCE_SYSTEM_FIELDS:
            fields.pop(canonical, None)
            if canonical not in nulled:
                nulled.append(canonical)
    for name in header.get("diffFields", ()):
        canonical = mapping.get(name)
        if canonical is not None:
            fields.pop(canonical, None)
    return fields, nulled


def flatten(event: dict[str, Any]) -> dict[str, Any]:
    """Unwraps Avro JSON unions (``{"string": "x"}``) and spreads compound
    fields into dotted names; returns ``event`` itself when there is nothing to
    do, which is the common case and costs one type check per field."""
    flat: dict[str, Any] | None = None
    for key, value in event.items():
        if type(value) is not dict or key == HEADER:
            continue
        if flat is None:
            flat = dict(event)
        del flat[key]
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind in _AVRO_UNION_TYPES:
                flat[key] = inner
                continue
        for part, part_value in value.items():
            flat[f"{key}.{part}"] = part_value
    return event if flat is None else flat


def _activity(event: dict[str, Any], header: ChangeEventHeader) -> list[OpportunityChange]:
    entity, change_type = header["entityName"], header["changeType"]
    if change_type not in _ACTIVITY_CHANGES:
        return []
    ids = _records(header)
    values = flatten(event)
    what = values.get("WhatId")
    if what is None:
        raise InputError(
            "unsupported_entity",
            f"WhatId: the {entity} {change_type} carries no WhatId, so it cannot be attributed "
            "to an opportunity (an UPDATE carries only changed fields: enrich the channel "
            "with WhatId and WhoId)",
        )
    if type(what) is not str:
        raise violation("WhatId", f"expected a record id, got {type(what).__name__} {what!r}")
    if not what.startswith(OPPORTUNITY_PREFIX):
        # A task on an account or a case: ordinary traffic on a Task channel,
        # not an error, so it is counted as ignored instead of filling the
        # dead-letter topic.
        return []
    who = values.get("WhoId")
    contact = who if type(who) is str and who.startswith(CONTACT_PREFIX) else None
    occurred_at = _occurred_at(header)
    return [
        build_change(
            event_id=_event_id(header, record_id),
            source=SOURCE,
            opportunity_id=what,
            occurred_at=occurred_at,
            sequence=header["sequenceNumber"],
            op="activity",
            contact_ids=[] if contact is None else [contact],
        )
        for record_id in ids
    ]
