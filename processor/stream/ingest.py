"""Ingest: CRM input topics -> normalized changes on ``hygiene.changes``.

A plain aiokafka loop in batches: decode every message of a fetch, route the
changes by opportunity id, send one message per partition (LZ4-packed in the
same native call, ``HYGIENE_PACK_CHANGES``), wait for the acks, then commit
the input offsets. A crash before the commit replays the batch,
which the engine absorbs (events are deduplicated by id and ordered by event
time), so nothing is lost and nothing is double-counted. The next fetched batch
is decoded (in the decoder's thread) while one is sent and acknowledged, and
sent only after it; each batch commits exactly its own offsets. A send the broker
refuses makes the whole batch go again, with backoff, before anything after
it is sent (its dead letters may then be repeated).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    CommitFailedError,
    IllegalStateError,
)

from processor.settings import Settings
from processor.sources.base import Reject
from processor.sources.mapping import FieldMappings
from processor.sources.native import Decoder, Routed
from processor.stream import metrics
from processor.stream.failures import retried, send_dead_letter
from processor.stream.kafka import aiokafka_options
from processor.stream.offload import Offload
from schemas import DeadLetter

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, settings: Settings, mappings: FieldMappings) -> None:
        self.settings = settings
        # Settings.topics reads the environment each time: once, not per batch.
        self.topics = settings.topics
        self.decoder = Decoder(mappings, max_bytes=settings.max_message_bytes)
        self.partitions = settings.partitions
        self._route_many = partial(self.decoder.route_many, pack=settings.pack_changes)
        self.batches = 0
        self._stopping = asyncio.Event()
        self._offload = Offload("hygiene-ingest", threaded=settings.native_threads)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        settings = self.settings
        options = aiokafka_options(settings)
        consumer = AIOKafkaConsumer(
            *self.topics.inputs,
            group_id=f"{settings.app_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(1_048_576, settings.max_message_bytes * 2),
            fetch_max_bytes=64 * 1_048_576,
            **options,
        )
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1_048_576,
            max_request_size=16 * 1_048_576,
            compression_type=None,
            **options,
        )
        await producer.start()
        await consumer.start()
        try:
            batch: _Batch | None = None
            while not self._stopping.is_set():
                if batch is None:
                    fetched = await consumer.getmany(timeout_ms=200, max_records=5000)
                    if not fetched:
                        continue
                    batch = self._decode(fetched)
                # What is fetched already is decoded (in the decoder's thread)
                # while this batch is sent and acknowledged; it is sent only
                # after this one is, so the order on the topic stays.
                following = await consumer.getmany(timeout_ms=0, max_records=5000)
                upcoming = self._decode(following) if following else None
                if not await self._route(batch, producer, consumer):
                    # Partitions moved or stopping: not committed, read again
                    # (by whoever owns them), and what came after as well.
                    if upcoming is not None:
                        upcoming.discard()
                    batch = None
                    continue
                try:
                    await consumer.commit(batch.offsets)
                except (CommitFailedError, IllegalStateError) as exc:
                    # The group rebalanced while the batch was routed (a worker
                    # joined or left): its partitions may be another member's
                    # now. Leaving them uncommitted is safe, whoever owns them
                    # reads the batch again and the engine absorbs the repeat;
                    # raising would crash the whole worker.
                    log.warning("input offsets not committed, the batch will be read "
                                "again: %s", exc)
                else:
                    self.batches += 1
                batch = upcoming
        finally:
            await consumer.stop()
            await producer.stop()

    def _decode(self, fetched: dict[Any, list[Any]]) -> _Batch:
        inputs = [(tp, record) for tp, records in fetched.items() for record in records]
        # Decoded, routed and joined into internal messages in one native
        # call: no change becomes a Python object here.
        routing = self._offload.submit(self._route_many,
                                       [record.value or b"" for _, record in inputs],
                                       self.partitions, CHUNK_BYTES)
        return _Batch(fetched, inputs, routing)

    async def _route(self, batch: _Batch, producer: Any, consumer: Any) -> bool:
        """Sends the batch, again and again while the broker refuses a send
        (``processor.stream.failures.retried``): skipping it would lose it,
        because the next batch's commit would pass it."""
        tps = list(batch.fetched)
        first = min(records[0].offset for records in batch.fetched.values())
        what = f"a batch of {len(batch.inputs)} inputs from {tps[0].topic}@{first}"

        def ours() -> bool:
            assignment = consumer.assignment()
            return not self._stopping.is_set() and all(tp in assignment for tp in tps)

        async def attempt() -> None:
            await self._handle(batch, producer)

        return await retried(attempt, "ingest", what, ours, sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        """A wait that ends early when the worker stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _handle(self, batch: _Batch, producer: Any) -> None:
        topics = self.topics
        pending: list[Awaitable[Any]] = []
        inputs = batch.inputs
        routed = await batch.routing
        for partition, message in routed.messages:
            pending.append(await producer.send(topics.changes, message, partition=partition))
        rejected = [(reject, *inputs[index]) for index, reject in routed.rejects]
        messages, ignored = len(inputs), routed.ignored
        # Dead letters go out together with the changes (one round trip for
        # the batch, however many inputs were bad); one the topic refuses as
        # too large is sent again with less of its original.

        def letter(reject: Reject, tp: Any, record: Any) -> Awaitable[None]:
            async def send(value: bytes) -> None:
                await (await producer.send(topics.dead_letter, value, key=record.key))

            return send_dead_letter(send, partial(dead_letter, reject, tp.topic, tp.partition,
                                                  record.offset, record.key))

        pending.extend(letter(*rejected_input) for rejected_input in rejected)
        if pending:
            await asyncio.gather(*pending)
        metrics.INPUT_MESSAGES.inc(messages)  # counted once, when the batch went through
        metrics.IGNORED_EVENTS.inc(ignored)
        for reject, _, _ in rejected:
            metrics.DEAD_LETTERS.labels(reason=reject.reason).inc()


@dataclass
class _Batch:
    """A fetched batch and its decoding, started as soon as it was fetched."""

    fetched: dict[Any, list[Any]]
    inputs: list[tuple[Any, Any]]
    routing: asyncio.Future[Routed]

    @property
    def offsets(self) -> dict[Any, int]:
        """What to commit once the batch is sent: exactly its own offsets
        (the consumer's position may be past it, at the batch decoded next)."""
        return {tp: records[-1].offset + 1 for tp, records in self.fetched.items()}

    def discard(self) -> None:
        # Its decoding may still run (or have failed): nobody will ask.
        self.routing.add_done_callback(lambda done: done.cancelled() or done.exception())


CHUNK_BYTES = 768 * 1024
"""Internal messages stay under this (one change over it still goes, alone):
under the broker's default 1 MiB message limit, so a stock topic works."""


def dead_letter(
    reject: Reject, topic: str, partition: int | None, offset: int | None, key: bytes | None,
    keep: int,
) -> DeadLetter:
    return DeadLetter.of(reject.reason, reject.error, source=topic, original=reject.raw,
                         received_at=datetime.now(UTC), key=key, partition=partition,
                         offset=offset, keep=keep)
