"""Dead-letter records: every input that could not be processed, kept whole.

The original bytes travel base64-encoded so that any payload, even invalid
UTF-8, can be re-driven after a fix.
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field

from ._base import Record, UtcDatetime

DeadLetterReason = Literal[
    "malformed_json",
    "unknown_format",
    "schema_violation",
    "oversized",
    "unsupported_entity",
    "processing_error",
    "invalid_override",
    "delivery_failed",
]


class DeadLetter(Record):
    reason: DeadLetterReason
    error: str = Field(description="Human-readable explanation, naming the offending key.")
    source: str = Field(description="Topic or file the input came from.")
    partition: int | None = None
    offset: int | None = Field(default=None, description="Kafka offset or line number in a file.")
    original_key_b64: str | None = None
    original_value_b64: str
    received_at: UtcDatetime

    @staticmethod
    def encode(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    def original_value(self) -> bytes:
        return base64.b64decode(self.original_value_b64)
