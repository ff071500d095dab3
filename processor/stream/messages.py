"""Messages on the internal ``hygiene.changes`` topic.

One message carries a batch of normalized changes for one partition, or a
sweep tick. Validated from bytes with pydantic on the way in, because it
crosses a process boundary like any other record.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import TypeAdapter

from schemas import OpportunityChange, Record


class ChangeBatch(Record):
    kind: Literal["changes"] = "changes"
    changes: list[OpportunityChange]


class SweepTick(Record):
    kind: Literal["sweep"] = "sweep"
    at_ms: int


InternalMessage = ChangeBatch | SweepTick
_ADAPTER: TypeAdapter[InternalMessage] = TypeAdapter(InternalMessage)


def encode_changes(changes: list[OpportunityChange]) -> bytes:
    # orjson serializes the models' datetimes natively; the dicts are the
    # models' own fields, so this is the JSON pydantic would write, faster.
    return orjson.dumps({"kind": "changes", "changes": [c.__dict__ for c in changes]})


def encode_sweep(at_ms: int) -> bytes:
    return orjson.dumps({"kind": "sweep", "at_ms": at_ms})


def decode(raw: bytes) -> InternalMessage:
    return _ADAPTER.validate_json(raw)
