"""Dead-letter records: every input that could not be processed, kept whole.

The original bytes travel base64-encoded so that any payload, even invalid
UTF-8, can be re-driven after a fix. Base64 makes a record a third larger
than its original, so the dead-letter topic is created with room for that
(``DEAD_LETTER_TOPIC_BYTES``), and an original over ``ORIGINAL_KEPT_BYTES``
(five times Kafka's default message size) keeps only its first bytes, with
``truncated`` set and ``original_size`` saying how large it was: a dead
letter the broker refuses would stop the stream it is meant to protect.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from pydantic import Field

from ._base import Record, UtcDatetime

ORIGINAL_KEPT_BYTES = 5 * 1_048_576
DEAD_LETTER_TOPIC_BYTES = 8 * 1_048_576
"""``max.message.bytes`` of the dead-letter topic (``hygiene topics create``):
a record with a whole ``ORIGINAL_KEPT_BYTES`` original, base64, fits."""

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
    original_size: int | None = Field(
        default=None, description="Bytes of the original value (all of it, when truncated).")
    truncated: bool = Field(
        default=False,
        description="original_value_b64 holds only the first bytes of it (5 MiB, or 64 KiB "
        "when the dead-letter topic refused more).")
    received_at: UtcDatetime

    @staticmethod
    def encode(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    @classmethod
    def of(
        cls,
        reason: DeadLetterReason,
        error: str,
        *,
        source: str,
        original: bytes,
        received_at: datetime,
        key: bytes | None = None,
        partition: int | None = None,
        offset: int | None = None,
        keep: int = ORIGINAL_KEPT_BYTES,
    ) -> DeadLetter:
        """A dead letter for ``original`` (kept whole up to ``keep`` bytes)."""
        kept = original[:keep]
        return cls(
            reason=reason, error=error, source=source, partition=partition, offset=offset,
            original_key_b64=cls.encode(key) if key is not None else None,
            original_value_b64=cls.encode(kept), original_size=len(original),
            truncated=len(kept) < len(original), received_at=received_at,
        )

    def original_value(self) -> bytes:
        return base64.b64decode(self.original_value_b64)
