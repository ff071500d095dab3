"""The native record batches (``native/decode/src/kafka_batch.rs``) read
back by aiokafka's own batch reader: the format any Kafka client reads."""

from __future__ import annotations

import os

import pytest
from aiokafka.record.default_records import DefaultRecordBatch

from processor.hygiene_decode import record_batches, with_producer_state

RECORDS: list[tuple[bytes | None, bytes | None]] = [
    (f"006{i:015d}".encode(), b'{"stage":"Discovery","amount":%d}' % i * (1 + i % 7))
    for i in range(500)
]
RECORDS += [(None, b"keyless"), (b"tombstone", None), (b"", b""), (b"rand", os.urandom(3000))]


def read(buffer: bytes) -> DefaultRecordBatch:
    batch = DefaultRecordBatch(bytearray(buffer))
    assert batch.validate_crc()
    return batch


@pytest.mark.parametrize("lz4", [True, False], ids=["lz4", "plain"])
def test_batches_read_back_as_the_records_in_order(lz4: bool) -> None:
    built = record_batches(RECORDS, 1_790_000_000_123, 8 * 1024, lz4)
    assert len(built) > 3
    got: list[tuple[bytes | None, bytes | None]] = []
    for buffer, count in built:
        batch = read(buffer)
        assert batch.compression_type == (3 if lz4 else 0)
        assert batch.producer_id == -1
        records = list(batch)
        assert len(records) == count
        assert [r.offset for r in records] == list(range(count))
        assert all(r.timestamp == 1_790_000_000_123 for r in records)
        got += [(r.key, r.value) for r in records]
    assert got == RECORDS


def test_lz4_batches_are_smaller_and_plain_ones_keep_to_the_size() -> None:
    plain = record_batches(RECORDS[:500], 0, 1 << 20, False)
    packed = record_batches(RECORDS[:500], 0, 1 << 20, True)
    assert len(plain) == len(packed) == 1
    assert len(packed[0][0]) * 3 < len(plain[0][0])
    for buffer, count in record_batches(RECORDS, 0, 4096, False):
        assert count == 1 or len(buffer) - 61 <= 4096


def test_a_record_larger_than_a_batch_goes_alone() -> None:
    big = (b"big", b"x" * 10_000)
    built = record_batches([(b"a", b"1"), big, (b"b", b"2")], 0, 1000, True)
    assert [count for _, count in built] == [1, 1, 1]
    assert [(r.key, r.value) for r in read(built[1][0])] == [big]


def test_producer_state_is_what_the_reader_sees() -> None:
    (buffer, _), = record_batches(RECORDS[:10], 0, 1 << 20, True)
    batch = read(with_producer_state(buffer, 4242, 3, 17))
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (4242, 3, 17)
    assert [(r.key, r.value) for r in batch] == RECORDS[:10]
    with pytest.raises(ValueError, match="header"):
        with_producer_state(b"short", 1, 1, 1)
