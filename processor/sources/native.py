"""The decoders the product runs: the native ones (Rust, ``native/decode``).

The Python decoders beside this module stay the reference: ``tests/native``
holds the two to the same changes, ignored counts and rejects, message for
message. Decoding natively is about five times cheaper, and its changes come
out as the internal topic's JSON, so ingest forwards them without building
or re-encoding a record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import orjson
from pydantic import TypeAdapter

from processor import hygiene_decode
from processor.sources.base import Reject
from processor.sources.detect import MAX_BYTES
from processor.sources.export import native_mappings
from processor.sources.mapping import FieldMappings
from schemas import OpportunityChange
from schemas.deadletter import DeadLetterReason

_ELEMENT: Final = re.compile(r"\[(\d+)\] ")
_CHANGES: Final[TypeAdapter[list[OpportunityChange]]] = TypeAdapter(list[OpportunityChange])


@dataclass(slots=True)
class Decoded:
    """One message: its changes as JSON (the form ``hygiene.changes`` carries),
    what to dead-letter, and how many events were understood and ignored."""

    changes: list[bytes] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ignored: int = 0

    def records(self) -> list[OpportunityChange]:
        """The changes as records, validated in one call (for the replay,
        whose engine takes records)."""
        if not self.changes:
            return []
        return _CHANGES.validate_json(b"[" + b",".join(self.changes) + b"]")


class Decoder:
    def __init__(self, mappings: FieldMappings, *, max_bytes: int = MAX_BYTES) -> None:
        self.arguments = (native_mappings(mappings), max_bytes)
        """What the native decoder was made with (the native core takes the
        same to decode in its own calls)."""
        self._native = hygiene_decode.Decoder(*self.arguments)

    def decode(self, raw: bytes) -> Decoded:
        changes, ignored, rejects = self._native.decode(raw)
        return Decoded(changes, rejects_of(raw, rejects), ignored)

    def route_many(
        self, raws: list[bytes], partitions: int, limit: int, *, pack: bool = False
    ) -> Routed:
        """Decoded and routed in one call: a change's JSON is never a Python
        object (ingest's hot path). ``pack``: each message LZ4-packed
        (``processor.stream.messages``), in the same call."""
        messages, ignored, dead = self._native.route_many(raws, partitions, limit, pack)
        rejects = [(index, reject) for index, reason, error in dead
                   for reject in rejects_of(raws[index], [(reason, error)])]
        return Routed(messages, rejects, ignored)

    def decode_many(self, raws: Sequence[bytes]) -> list[Decoded]:
        """One call for a fetched batch: the crossing into Rust is paid once."""
        return [Decoded(changes, rejects_of(raw, rejects) if rejects else [], ignored)
                for raw, (changes, ignored, rejects)
                in zip(raws, self._native.decode_many(list(raws)), strict=True)]


@dataclass(slots=True)
class Routed:
    """A fetched batch as ingest sends it on: internal messages (the changes
    of one partition joined, ``processor.stream.messages``), what to
    dead-letter, and how many events were understood and ignored."""

    messages: list[tuple[int, bytes]]
    """(partition, ``{"kind":"changes",...}`` bytes), each under the limit
    unless one change alone is over it."""
    rejects: list[tuple[int, Reject]]
    """(index of the message in the batch, the reject), in order."""
    ignored: int


def rejects_of(raw: bytes, rejects: list[tuple[str, str]]) -> list[Reject]:
    """A rejected element of an array message is dead-lettered as its own
    bytes, as the Python decoder does, so it can be re-driven alone; the
    decoder names it (``[index] ...``), and rejects are rare enough to parse
    the message again for it."""
    out = []
    document: Any = None
    for reason, error in rejects:
        original = raw
        match = _ELEMENT.match(error)
        if match is not None:
            if document is None:
                document = orjson.loads(raw)
            original = orjson.dumps(document[int(match.group(1))])
        out.append(Reject(cast(DeadLetterReason, reason), error, original))
    return out
