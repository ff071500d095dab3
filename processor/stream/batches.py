"""Sending many records at once: one record batch per topic-partition,
filled in aiokafka's C batch builder, instead of one ``send`` per record.

Why: a unit of the state agent sends a few thousand records (stage
history, alerts, regroup entries, then every touched state to the
changelog). Through ``producer.send`` each record is a coroutine, a
metadata check, a pure-Python murmur2 hash, a future of its own that the
ack resolves and a gather callback: about 14 µs of the event loop's CPU a
record. Built into batches here, with the hash done natively, it is about
3 µs (``bench/send_bench.py``).

What stays as it was:

- Partitions: a record without one goes where aiokafka's default
  partitioner sends it (murmur2 of the key; a random partition without a
  key), so group tables and key-routed HTTP requests still agree on owners.
- Order: per topic-partition, records keep the order they are given in,
  and a batch is queued behind whatever the producer already holds for
  that partition (aiokafka's ``send_batch`` waits for it to be taken).
- Errors: a batch the broker refuses fails its future, as a refused record
  failed its own; the callers retry or dead-letter exactly as before.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from processor.hygiene_decode import partition_of

Record = tuple[bytes | None, bytes | None]
"""(key, value); a None value is a tombstone."""


@dataclass(frozen=True)
class SentBatch:
    """One batch handed to the producer: its future resolves to the
    metadata of its first record (``offset`` is the batch's base offset)."""

    topic: str
    partition: int
    count: int
    future: Awaitable[Any]

    async def last_offset(self) -> int:
        """The offset of the batch's last record, once it is acknowledged."""
        metadata = await self.future
        return int(metadata.offset) + self.count - 1


async def partition_records(
    producer: Any, records: Iterable[tuple[str, bytes | None, bytes | None]]
) -> dict[tuple[str, int], list[Record]]:
    """(topic, key, value) triples grouped by the partition aiokafka's
    default partitioner gives them, in order within each group."""
    grouped: dict[tuple[str, int], list[Record]] = {}
    counts: dict[str, int] = {}
    for topic, key, value in records:
        count = counts.get(topic)
        if count is None:
            # Waits for the topic's metadata the first time, as send does.
            count = counts[topic] = len(await producer.partitions_for(topic))
        partition = random.randrange(count) if key is None else partition_of(key, count)
        grouped.setdefault((topic, partition), []).append((key, value))
    return grouped


async def send_grouped(
    producer: Any, grouped: dict[tuple[str, int], list[Record]]
) -> list[SentBatch]:
    """Queues each group as one batch (several when a group outgrows the
    producer's batch size) and returns them without waiting for acks."""
    sent: list[SentBatch] = []
    for (topic, partition), records in grouped.items():
        batch = producer.create_batch()
        count = 0
        for key, value in records:
            if batch.append(timestamp=None, key=key, value=value) is None:
                sent.append(SentBatch(topic, partition, count, await producer.send_batch(
                    batch, topic, partition=partition)))
                batch = producer.create_batch()
                count = 0
                # An empty batch takes any one record, however large.
                batch.append(timestamp=None, key=key, value=value)
            count += 1
        if count:
            sent.append(SentBatch(topic, partition, count, await producer.send_batch(
                batch, topic, partition=partition)))
    return sent


async def publish_batched(
    producer: Any, records: Iterable[tuple[str, bytes | None, bytes | None]]
) -> None:
    """Sends the triples and returns once every one is acknowledged."""
    sent = await send_grouped(producer, await partition_records(producer, records))
    await asyncio.gather(*(batch.future for batch in sent))


def aiokafka_producer(app: Any) -> Any:
    """The aiokafka producer under a started Faust app's producer: Faust's
    own ``send`` takes one record at a time."""
    return app.producer._ensure_producer()
