"""Dead letters keep their original whole, up to what the dead-letter topic
is made to hold."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import DeadLetter
from schemas.deadletter import DEAD_LETTER_TOPIC_BYTES, ORIGINAL_KEPT_BYTES

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def letter(original: bytes) -> DeadLetter:
    return DeadLetter.of("oversized", "too large", source="crm.events", original=original,
                         received_at=NOW, key=b"opp-1", partition=3, offset=9)


def test_an_original_up_to_the_kept_size_travels_whole_and_fits_the_topic() -> None:
    original = bytes(range(256)) * (ORIGINAL_KEPT_BYTES // 256)
    record = letter(original)
    assert record.original_value() == original
    assert (record.original_size, record.truncated) == (len(original), False)
    assert record.original_key_b64 is not None
    assert len(record.model_dump_json()) < DEAD_LETTER_TOPIC_BYTES - 64 * 1024


def test_a_larger_original_keeps_its_first_bytes_and_says_so() -> None:
    original = b"{" + b"x" * (ORIGINAL_KEPT_BYTES + 10)
    record = letter(original)
    assert record.truncated and record.original_size == len(original)
    assert record.original_value() == original[:ORIGINAL_KEPT_BYTES]
    assert len(record.model_dump_json()) < DEAD_LETTER_TOPIC_BYTES


def test_earlier_records_without_the_size_fields_still_read() -> None:
    old = ('{"reason": "malformed_json", "error": "not JSON", "source": "crm.events", '
           '"original_value_b64": "e30=", "received_at": "2026-11-24T00:00:00Z"}')
    record = DeadLetter.model_validate_json(old)
    assert (record.original_size, record.truncated, record.original_value()) == (None, False,
                                                                                 b"{}")
