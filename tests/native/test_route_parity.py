"""Ingest's routing in Rust (``Decoder.route_many``, ``partition_of``)
against what it replaced: aiokafka's murmur2 for the partition, the decoders'
changes in order, and greedy joining under the size limit."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.partitioner import murmur2  # type: ignore[import-untyped, unused-ignore]

from processor.rules import default_rules
from processor.simulate import simulate
from processor.sources.mapping import FieldMappings
from processor.sources.native import Decoder
from processor.stream.messages import (
    PACKED_MARKER,
    ChangeBatch,
    decode,
    encode_change_bytes,
    readable,
    unpacked,
)
from processor.stream.routing import Partitioner

hygiene_decode = pytest.importorskip("processor.hygiene_decode")


def kafka_partition(key: str, partitions: int) -> int:
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


def test_partitions_are_the_kafka_default_partitioners() -> None:
    rng = random.Random(7)
    alphabet = "abcXYZ0189-_/ éü中文🙂"
    keys = ["", "0", "006Dn000004", *(f"opp-{n}" for n in range(2_000))]
    keys += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
             for _ in range(5_000)]
    for partitions in (1, 2, 3, 4, 7, 12, 64):
        route = Partitioner(partitions)
        assert [route(k) for k in keys] == [kafka_partition(k, partitions) for k in keys]


def reference(raws: list[bytes], partitions: int, limit: int) -> list[tuple[int, bytes]]:
    """What ingest did in Python: decode, route each change, join greedily."""
    by_partition: dict[int, list[bytes]] = {}
    for changes, _, _ in Decoder(FieldMappings())._native.decode_many(raws):
        for change in changes:
            key = orjson.loads(change)["opportunity_id"]
            by_partition.setdefault(kafka_partition(key, partitions), []).append(change)
    frame = len(encode_change_bytes([]))
    out = []
    for partition, changes in by_partition.items():
        start, size = 0, 0
        for index, change in enumerate(changes):
            if index > start and size + len(change) + 1 > limit - frame:
                out.append((partition, encode_change_bytes(changes[start:index])))
                start, size = index, 0
            size += len(change) + 1
        out.append((partition, encode_change_bytes(changes[start:])))
    return out


@pytest.mark.parametrize(("partitions", "limit"), [(1, 768 * 1024), (4, 64 * 1024), (6, 4096)])
def test_route_many_is_decode_route_and_join(partitions: int, limit: int) -> None:
    rules = default_rules()
    sim = simulate(opportunities=200, days=60, seed=4, fmt="mixed",
                   start=datetime(2026, 1, 1, tzinfo=UTC), rules=rules)
    bad = [b"{not json", b"[]", orjson.dumps([{"subscriptionType": "deal.propertyChange"}])]
    raws = [*sim.events[:500], *bad, *sim.events[500:1500]]
    routed = Decoder(FieldMappings()).route_many(raws, partitions, limit)

    assert routed.messages == reference(raws, partitions, limit)
    assert len(routed.messages) > partitions  # the limit split some partitions
    for partition, message in routed.messages:
        batch = decode(message)
        assert isinstance(batch, ChangeBatch)
        assert len(message) <= limit or len(batch.changes) == 1
        assert {kafka_partition(c.opportunity_id, partitions) for c in batch.changes} == {partition}
    decoded = Decoder(FieldMappings()).decode_many(raws)
    assert routed.ignored == sum(d.ignored for d in decoded)
    assert routed.rejects == [(i, r) for i, d in enumerate(decoded) for r in d.rejects]
    assert [i for i, _ in routed.rejects] == [500, 501, 502]


def test_packed_routing_is_the_same_messages_packed() -> None:
    rules = default_rules()
    sim = simulate(opportunities=100, days=30, seed=5, fmt="mixed",
                   start=datetime(2026, 1, 1, tzinfo=UTC), rules=rules)
    plain = Decoder(FieldMappings()).route_many(sim.events, 3, 64 * 1024)
    packed = Decoder(FieldMappings()).route_many(sim.events, 3, 64 * 1024, pack=True)

    assert [p for p, _ in packed.messages] == [p for p, _ in plain.messages]
    assert all(m.startswith(PACKED_MARKER) for _, m in packed.messages)
    assert [unpacked(m) for _, m in packed.messages] == [m for _, m in plain.messages]
    assert [decode(m) for _, m in packed.messages] == [decode(m) for _, m in plain.messages]
    # What it is for: the copy of the input on the internal topic shrinks.
    assert sum(len(m) for _, m in packed.messages) * 3 < sum(len(m) for _, m in plain.messages)
    assert (packed.ignored, packed.rejects) == (plain.ignored, plain.rejects)


def test_a_packed_message_that_does_not_unpack_is_refused_and_kept_as_is() -> None:
    message = hygiene_decode.pack(b'{"kind":"changes","changes":[]}' * 20)
    broken = message[:-4]
    with pytest.raises(ValueError, match="does not unpack"):
        unpacked(broken)
    assert readable(broken) == broken
    assert readable(message) == unpacked(message)


def test_no_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="partitions"):
        Decoder(FieldMappings()).route_many([b"{}"], 0, 1024)
