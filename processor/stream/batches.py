"""Sending many records at once: one record batch per topic-partition, built
natively (``native/decode/src/kafka_batch.rs``, LZ4-compressed by default)
and handed whole to aiokafka's producer, instead of one ``send`` per record.

Why: a unit of the state agent sends a few thousand records (stage
history, alerts, regroup entries, then every touched state to the
changelog). Through ``producer.send`` each record is a coroutine, a
metadata check, a pure-Python murmur2 hash, a future of its own that the
ack resolves and a gather callback: about 14 µs of the event loop's CPU a
record. Grouped here and built natively with the GIL released, it is a
fraction of that (``bench/send_bench.py``), and compressed, the bytes the
event loop writes to its socket and the broker stores are about 4x fewer.

What stays as it was:

- Partitions: a record without one goes where aiokafka's default
  partitioner sends it (murmur2 of the key; a random partition without a
  key), so group tables and key-routed HTTP requests still agree on owners.
- Order: per topic-partition, records keep the order they are given in,
  and a batch is queued behind whatever the producer already holds for
  that partition (aiokafka's ``send_batch`` waits for it to be taken).
- Errors: a batch the broker refuses fails its future, as a refused record
  failed its own; the callers retry or dead-letter exactly as before.
- Readers: every Kafka client decompresses LZ4 batches by itself (Python's
  aiokafka with ``cramjam``, a dependency of ours).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from processor.hygiene_decode import partition_of, record_batches, with_producer_state
from processor.stream.offload import Offload

Record = tuple[bytes | None, bytes | None]
"""(key, value); a None value is a tombstone."""

Grouped = dict[tuple[str, int], list[Record]]

MAX_BATCH_BYTES = 1_048_576 - 1024
"""Records per batch, uncompressed: under a topic's default
``max.message.bytes`` (1 MiB and 12 bytes) with the batch header and LZ4's
framing on top. A record larger than this goes alone, as with aiokafka."""

OFFLOAD_RECORDS = 256
"""Sends of fewer records build their batches on the event loop's thread:
handing them to the offload thread would cost more than building them."""


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


class BuiltBatch:
    """A finished record batch in the shape aiokafka's producer takes from
    its own ``BatchBuilder`` in ``send_batch``. Closed from the start: a
    ``send`` of one record to the same partition starts a batch of its own
    behind this one."""

    __slots__ = ("_buffer", "_count")

    def __init__(self, buffer: bytes, count: int) -> None:
        self._buffer = buffer
        self._count = count

    def append(self, *, timestamp: Any, key: Any, value: Any, headers: Any = ()) -> None:
        return None

    def close(self) -> None:
        pass

    def closed(self) -> bool:
        return True

    def size(self) -> int:
        return len(self._buffer)

    def record_count(self) -> int:
        return self._count

    def _build(self) -> bytes:
        return self._buffer

    def _set_producer_state(self, producer_id: int, epoch: int, base_sequence: int) -> None:
        # An idempotent producer stamps each batch before its first send.
        self._buffer = with_producer_state(self._buffer, producer_id, epoch, base_sequence)


class BatchSender:
    """Sends through the aiokafka producer ``producer_of()`` returns (looked
    up per call: Faust starts its producer with the worker)."""

    def __init__(self, producer_of: Callable[[], Any], *, lz4: bool = True,
                 max_batch_bytes: int = MAX_BATCH_BYTES, offload: Offload | None = None) -> None:
        self.producer_of = producer_of
        self.lz4 = lz4
        self.max_batch_bytes = max_batch_bytes
        self.offload = offload
        """Where large sends build their batches: the building (encoding,
        LZ4, CRC) releases the GIL, so in a thread of its own it leaves the
        event loop free meanwhile."""
        self._in_order: asyncio.Future[list[SentBatch]] | None = None

    async def partition(
        self, records: Iterable[tuple[str, bytes | None, bytes | None]]
    ) -> Grouped:
        """(topic, key, value) triples grouped by the partition aiokafka's
        default partitioner gives them, in order within each group."""
        producer = self.producer_of()
        grouped: Grouped = {}
        counts: dict[str, int] = {}
        for topic, key, value in records:
            count = counts.get(topic)
            if count is None:
                # Waits for the topic's metadata the first time, as send does.
                count = counts[topic] = len(await producer.partitions_for(topic))
            partition = random.randrange(count) if key is None else partition_of(key, count)
            grouped.setdefault((topic, partition), []).append((key, value))
        return grouped

    async def send(self, grouped: Grouped) -> list[SentBatch]:
        """Queues each group as one batch (several when a group outgrows
        ``max_batch_bytes``) and returns them without waiting for acks."""
        producer = self.producer_of()
        now_ms = int(time.time() * 1000)
        groups = [(where, records) for where, records in grouped.items() if records]
        max_bytes, lz4 = self.max_batch_bytes, self.lz4

        def build() -> list[list[tuple[bytes, int]]]:
            return [record_batches(records, now_ms, max_bytes, lz4) for _, records in groups]

        offload = self.offload
        if offload is not None and sum(len(records) for _, records in groups) >= OFFLOAD_RECORDS:
            built = await offload.submit(build)
        else:
            built = build()
        sent: list[SentBatch] = []
        for ((topic, partition), _), batches in zip(groups, built, strict=True):
            for buffer, count in batches:
                future = await producer.send_batch(BuiltBatch(buffer, count), topic,
                                                   partition=partition)
                sent.append(SentBatch(topic, partition, count, future))
        return sent

    def send_in_order(self, grouped: Grouped) -> asyncio.Future[list[SentBatch]]:
        """Starts sending ``grouped`` and returns at once: the batches are
        queued after those of every earlier call of this method (failed or
        not), so a caller that does not wait still writes in order."""
        previous = self._in_order

        async def send() -> list[SentBatch]:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            return await self.send(grouped)

        self._in_order = queued = asyncio.ensure_future(send())
        return queued

    async def publish(self, records: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
        """Sends the triples and returns once every one is acknowledged."""
        sent = await self.send(await self.partition(records))
        await asyncio.gather(*(batch.future for batch in sent))


def aiokafka_producer(app: Any) -> Any:
    """The aiokafka producer under a started Faust app's producer: Faust's
    own ``send`` takes one record at a time."""
    return app.producer._ensure_producer()
