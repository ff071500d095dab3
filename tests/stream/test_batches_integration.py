"""``processor.stream.batches`` through a real broker: records sent as
natively built batches (LZ4 and plain) land where aiokafka's default
partitioner puts them, in the order given, readable by any consumer, and a
batch the broker refuses fails as a refused record did."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from processor.stream.batches import OFFLOAD_RECORDS, BatchSender
from processor.stream.offload import Offload

from .conftest import NewStream
from .support import PARTITIONS, Kafka

pytestmark = pytest.mark.integration


@asynccontextmanager
async def sender(bootstrap: str, batch_bytes: int, lz4: bool, offload: bool = False,
                 **options: Any) -> AsyncIterator[BatchSender]:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, **options)
    await client.start()
    try:
        yield BatchSender(lambda: client, lz4=lz4, max_batch_bytes=batch_bytes,
                          offload=Offload("test-batches") if offload else None)
    finally:
        await client.stop()


def run(kafka: Kafka, body: Callable[[BatchSender], Awaitable[Any]], batch_bytes: int,
        lz4: bool = True, offload: bool = False, **options: Any) -> Any:
    async def main() -> Any:
        async with sender(kafka.bootstrap, batch_bytes, lz4, offload, **options) as client:
            return await asyncio.wait_for(body(client), 60)

    return asyncio.run(main())


@pytest.mark.parametrize(("lz4", "offload", "idempotent"), [
    (True, True, False), (False, False, False), (True, False, True)],
    ids=["lz4-offloaded", "plain-inline", "lz4-idempotent"])
def test_records_land_where_the_default_partitioner_puts_them_in_order(
    kafka: Kafka, new_stream: NewStream, lz4: bool, offload: bool, idempotent: bool
) -> None:
    stream = new_stream()
    topics = [stream.alerts, stream.history, stream.dead_letter]
    records: list[tuple[str, bytes | None, bytes | None]] = []
    for i in range(3000):
        key = None if i % 97 == 0 else f"006{i % 300:015d}".encode()
        value = None if i % 101 == 0 and key is not None else f"{i}:".encode() + b"x" * 300
        records.append((topics[i % 3], key, value))

    assert len(records) >= OFFLOAD_RECORDS  # built in the offload thread when one is given
    # 16 KiB batches: a partition's records span many of them. An idempotent
    # producer stamps its id and sequence numbers into each batch.
    run(kafka, lambda client: client.publish(records), 16 * 1024, lz4, offload,
        enable_idempotence=idempotent)

    default = DefaultPartitioner()
    every = list(range(PARTITIONS))
    for topic in topics:
        read = kafka.read(topic)
        sent = [(key, value) for t, key, value in records if t == topic]
        assert sorted(((r.key, r.value) for r in read), key=repr) == sorted(sent, key=repr)
        assert any(r.key is None for r in read)
        # Values are unique where keys are None: where a keyless record went.
        keyless = {r.value: r.partition for r in read if r.key is None}
        for partition in every:
            landed = [(r.key, r.value) for r in read if r.partition == partition]
            given = [(k, v) for k, v in sent if partition == (
                keyless[v] if k is None else default(k, every, every))]
            assert landed == given, f"{topic}[{partition}]: not where or not in the order sent"


def test_sends_in_order_queue_in_call_order_even_when_built_in_a_thread(
    kafka: Kafka, new_stream: NewStream
) -> None:
    """A large send builds in the offload thread, a small one right away:
    unchained, the small one would reach the partition first."""
    stream = new_stream()
    topic = stream.history
    large = [(f"a{i}".encode(), os.urandom(2000)) for i in range(2 * OFFLOAD_RECORDS)]
    small = [(b"b0", b"after")]

    async def body(client: BatchSender) -> None:
        first = client.send_in_order({(topic, 1): large})
        second = client.send_in_order({(topic, 1): small})
        sent = [*await first, *await second]
        await asyncio.gather(*(batch.future for batch in sent))

    run(kafka, body, 1 << 20, True, True)
    read = [(r.key, r.value) for r in kafka.read(topic) if r.partition == 1]
    assert read == large + small


def test_a_single_send_right_behind_a_built_batch_starts_its_own_in_order(
    kafka: Kafka, new_stream: NewStream
) -> None:
    """The worker's timers send single records (flush ticks) to partitions
    its state agent writes in built batches: aiokafka then finds a built
    batch as the partition's open one, which must refuse the record."""
    stream = new_stream()
    topic = stream.history
    records = [(f"k{i}".encode(), b"v%d" % i) for i in range(50)]

    async def body(client: BatchSender) -> None:
        sent = await client.send({(topic, 3): records})
        # Before the sender has taken the batch: it is the partition's last.
        tick = await client.producer_of().send(topic, b"tick", key=b"t", partition=3)
        await asyncio.gather(*(batch.future for batch in sent), tick)

    run(kafka, body, 1 << 20, False)
    read = [(r.key, r.value) for r in kafka.read(topic) if r.partition == 3]
    assert read == [*records, (b"t", b"tick")]


def test_a_record_larger_than_a_batch_goes_alone_and_last_offsets_are_the_brokers(
    kafka: Kafka, new_stream: NewStream
) -> None:
    stream = new_stream()
    topic = stream.history
    small = [(f"k{i}".encode(), b"y" * 200) for i in range(40)]
    records = [*small[:20], (b"big", b"z" * 20_000), *small[20:]]

    async def body(client: BatchSender) -> list[tuple[int, int]]:
        sent = await client.send({(topic, 2): records})
        return [(batch.count, await batch.last_offset()) for batch in sent]

    batches = run(kafka, body, 4096)
    assert len(batches) >= 3
    assert sum(count for count, _ in batches) == len(records)
    ends = kafka.end_offsets(topic)
    assert batches[-1][1] == ends[2] - 1
    read = [r for r in kafka.read(topic) if r.partition == 2]
    assert [(r.key, r.value) for r in read] == records
    # Each batch's last offset is the offset of its last record.
    position = 0
    for count, last in batches:
        position += count
        assert read[position - 1].offset == last


def test_a_batch_the_broker_refuses_fails_with_the_brokers_error(
    kafka: Kafka, new_stream: NewStream
) -> None:
    stream = new_stream()
    kafka.set_topic_config(stream.alerts, {"max.message.bytes": "200"})

    async def body(client: BatchSender) -> None:
        # Random bytes: LZ4 cannot take them under the limit.
        await client.publish([(stream.alerts, b"k", os.urandom(500))])

    with pytest.raises(MessageSizeTooLargeError):
        run(kafka, body, 16 * 1024)
    assert kafka.count(stream.alerts) == 0


def test_records_are_grouped_in_order_by_the_default_partitioner(
    kafka: Kafka, new_stream: NewStream
) -> None:
    stream = new_stream()
    keys = [f"opp-{i}".encode() for i in range(200)]

    async def body(client: BatchSender) -> dict[tuple[str, int], list[Any]]:
        return await client.partition([(stream.alerts, k, k) for k in keys])

    grouped = run(kafka, body, 16 * 1024)
    default = DefaultPartitioner()
    every = list(range(PARTITIONS))
    assert sorted(grouped) == [(stream.alerts, p) for p in every]
    for (_, partition), records in grouped.items():
        assert [k for k, _ in records] == [k for k in keys
                                           if default(k, every, every) == partition]
