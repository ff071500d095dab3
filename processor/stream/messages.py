"""Messages on the internal ``hygiene.changes`` topic.

One message carries a batch of normalized changes for one partition, or a
sweep tick. Validated from bytes with pydantic on the way in, because it
crosses a process boundary like any other record.

Ingest packs the change batches it routes (LZ4, behind a 4-byte marker:
``native/decode/src/packed.rs``, ``HYGIENE_PACK_CHANGES``); every reader
here takes packed and plain messages alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import orjson
from pydantic import Field, TypeAdapter

from processor import hygiene_decode
from schemas import OpportunityChange, Record

PACKED_MARKER: bytes = hygiene_decode.PACKED_MARKER


class ChangeBatch(Record):
    kind: Literal["changes"] = "changes"
    changes: list[OpportunityChange]


class SweepTick(Record):
    kind: Literal["sweep"] = "sweep"
    at_ms: int


InternalMessage = Annotated[ChangeBatch | SweepTick, Field(discriminator="kind")]
# The discriminator matters for speed: a plain union validates a batch of
# changes in smart mode and cost twice as much per change (measured).
_ADAPTER: TypeAdapter[ChangeBatch | SweepTick] = TypeAdapter(InternalMessage)


def encode_change_bytes(changes: list[bytes]) -> bytes:
    """A batch from changes already in their JSON form (what the native
    decoder returns and ingest forwards): joined, never parsed."""
    return b'{"kind":"changes","changes":[' + b",".join(changes) + b"]}"


def encode_changes(changes: list[OpportunityChange]) -> bytes:
    """A batch from records (tests, the sweep-free tools)."""
    return encode_change_bytes([c.to_json() for c in changes])


def encode_sweep(at_ms: int) -> bytes:
    return orjson.dumps({"kind": "sweep", "at_ms": at_ms})


def decode(raw: bytes) -> ChangeBatch | SweepTick:
    return _ADAPTER.validate_json(unpacked(raw))


def unpacked(raw: bytes) -> bytes:
    """The message's JSON (inflated if ingest packed it); a packed message
    that does not inflate raises ``ValueError``."""
    return hygiene_decode.unpack(raw) if raw.startswith(PACKED_MARKER) else raw


def readable(raw: bytes) -> bytes:
    """What a dead letter keeps of a message: its JSON when it is a packed
    batch that inflates (readable, and re-driven as it is), else the bytes."""
    try:
        return unpacked(raw)
    except ValueError:
        return raw


_CHANGES_PREFIX = b'{"kind":"changes","changes":['


@dataclass(frozen=True)
class RawChanges:
    """Change batches as the bytes that came off the topic, for the native
    core, which reads them itself: no pydantic model per change."""

    messages: list[bytes]


def decode_raw(raw: bytes) -> RawChanges | SweepTick:
    """``decode`` for the native state processor: a batch as written by
    ``encode_change_bytes``, packed or not, is passed on unread (a malformed
    one fails in the core, and is dead-lettered on its own like one that
    does not decode);
    anything else is validated, a batch written otherwise re-encoded."""
    if raw.startswith((_CHANGES_PREFIX, PACKED_MARKER)):
        return RawChanges([raw])
    decoded = decode(raw)
    if isinstance(decoded, ChangeBatch):
        return RawChanges([encode_changes(decoded.changes)])
    return decoded


def as_change_batch(raw: RawChanges) -> ChangeBatch:
    """The models of a ``RawChanges`` (the Python engine needs them)."""
    changes: list[OpportunityChange] = []
    for message in raw.messages:
        decoded = decode(message)
        if not isinstance(decoded, ChangeBatch):
            raise ValueError(f"not a change batch: {decoded.kind}")
        changes.extend(decoded.changes)
    return ChangeBatch(changes=changes)
