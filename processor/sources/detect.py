"""One Kafka message in, normalized changes and rejects out, whatever the CRM.

The format is recognized per event by the keys only its vendor uses, so a
topic may carry any mix of formats and the check costs a few dict lookups.
A message that is a JSON array is taken apart and each element is decoded on
its own: one bad element is dead-lettered (as its own bytes) while the good
ones still count, because dropping a whole HubSpot batch for one bad event
would lose changes nobody could re-drive.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from processor.sources import bulk, generic, hubspot, salesforce
from processor.sources.base import DecodeResult, InputError, Normalizer, Reject
from processor.sources.mapping import FieldMappings
from schemas.deadletter import DeadLetterReason

MAX_BYTES: Final = 1_048_576
_KEYS_SHOWN: Final = 8
_SHAPES: Final = (
    "a Salesforce change event (ChangeEventHeader), a HubSpot webhook event "
    "(subscriptionType), a bulk row envelope (export_id, row) or a generic change "
    "event (event_id, opportunity_id)"
)


def decode(raw: bytes, mappings: FieldMappings, *, max_bytes: int = MAX_BYTES) -> DecodeResult:
    """Never raises for bad input: everything that cannot become a change
    comes back as a ``Reject`` with the bytes to dead-letter."""
    result = DecodeResult()
    if len(raw) > max_bytes:
        problem = f"message is {len(raw)} bytes, over the {max_bytes}-byte limit"
        result.rejects.append(Reject("oversized", problem, raw))
        return result
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        result.rejects.append(Reject("malformed_json", f"not JSON: {exc}", raw))
        return result
    if type(document) is not list:
        _decode_event(document, mappings, result, raw, "")
    elif not document:
        result.rejects.append(Reject("unknown_format", "an empty JSON array: no events", raw))
    else:
        for index, element in enumerate(document):
            _decode_event(element, mappings, result, None, f"[{index}] ")
    return result


def detect(event: Any) -> tuple[Normalizer, dict[str, Any]] | None:
    """The normalizer for one event and the part of it that normalizer reads
    (Salesforce events may sit inside an envelope), or None."""
    if type(event) is not dict:
        return None
    inner = salesforce.unwrap(event)
    if inner is not None:
        return salesforce.normalize, inner
    if hubspot.is_hubspot(event):
        return hubspot.normalize, event
    if bulk.is_bulk(event):
        return bulk.normalize, event
    if generic.is_generic(event):
        return generic.normalize, event
    return None


def _decode_event(
    event: Any, mappings: FieldMappings, result: DecodeResult, raw: bytes | None, where: str
) -> None:
    found = detect(event)
    if found is None:
        _reject(result, "unknown_format", where + _unknown(event), event, raw)
        return
    normalize, inner = found
    try:
        changes = normalize(inner, mappings)
    except InputError as exc:
        _reject(result, exc.reason, f"{where}{exc}", event, raw)
        return
    except Exception as exc:  # a payload shape no check foresaw must not stop the stream
        problem = f"{where}{type(exc).__name__}: {exc}"
        _reject(result, "processing_error", problem, event, raw)
        return
    if changes:
        result.changes.extend(changes)
    else:
        result.ignored += 1


def _reject(
    result: DecodeResult,
    reason: DeadLetterReason,
    error: str,
    event: Any,
    raw: bytes | None,
) -> None:
    """``raw`` is the whole message for a single event; an array element is
    re-serialized so that its dead letter can be re-driven on its own."""
    result.rejects.append(Reject(reason, error, raw if raw is not None else orjson.dumps(event)))


def _unknown(event: Any) -> str:
    if type(event) is not dict:
        return f"expected a JSON object, got {type(event).__name__}; expected {_SHAPES}"
    keys = sorted(event)
    shown = ", ".join(keys[:_KEYS_SHOWN]) + (", ..." if len(keys) > _KEYS_SHOWN else "")
    return f"no recognizable format (keys: {shown or 'none'}); expected {_SHAPES}"
