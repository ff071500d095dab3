"""What sending costs the event loop: records one ``send`` at a time (the
worker until session 10, and the plain loop) against the same records as
one batch per topic-partition (``processor.stream.batches``): aiokafka's
own batch builder, and the native one, plain and LZ4.

Each round sends units of records shaped like the state agent's (6 topics
of 4 partitions, 600-byte values, keys from 9,000 opportunities) and waits
for each unit's acks, as the agent does. Reported: this process's CPU per
record and records per second of wall time, through a real broker.

    python bench/send_bench.py --units 40 --per-unit 2300 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from benchkit import Broker, create_topics, exit_on_sigterm, log

from processor.stream.batches import BatchSender

Outgoing = list[tuple[str, bytes | None, bytes | None]]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def one_at_a_time(producer: Any, records: Outgoing) -> None:
    pending = [await producer.send(topic, value, key=key) for topic, key, value in records]
    await asyncio.gather(*pending)


async def aiokafka_batches(producer: Any, records: Outgoing) -> None:
    """aiokafka's BatchBuilder, filled record by record in Python."""
    grouped = await BatchSender(lambda: producer).partition(records)
    pending = []
    for (topic, partition), group in grouped.items():
        batch = producer.create_batch()
        for key, value in group:
            if batch.append(timestamp=None, key=key, value=value) is None:
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value)
        pending.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*pending)


SENDERS: dict[str, Callable[[Any, Outgoing], Awaitable[None]]] = {
    "per-record": one_at_a_time,
    "aiokafka-batches": aiokafka_batches,
    "native": lambda producer, records: BatchSender(lambda: producer, lz4=False).publish(records),
    "native-lz4": lambda producer, records: BatchSender(lambda: producer).publish(records),
}


async def measure(bootstrap: str, how: str, units: int, per_unit: int) -> dict[str, float]:
    tag = f"send-{how}-{uuid.uuid4().hex[:8]}"
    topics = [f"{tag}-{i}" for i in range(6)]
    create_topics(bootstrap, {topic: 4 for topic in topics})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                                max_batch_size=1_048_576, max_request_size=16 * 1_048_576)
    await producer.start()
    try:
        # Warm: metadata known and leaders elected before timing.
        await one_at_a_time(producer, [(topic, b"warm", b"x") for topic in topics])
        keys = [f"006{i:015d}".encode() for i in range(9000)]
        # A stored state's shape, so that compression meets what it would.
        value = (b'{"opportunity_id":"006000000000000001","stage":"Negotiation","amount":'
                 b'125000.0,"close_date":"2027-01-31","owner_id":"005000000000000042",'
                 b'"next_step":"Send the redlined MSA","fields":{"meddicc_champion":"Dana"},'
                 b'"timeline":[{"stage":"Discovery","entered_ms":1790000000000}]}') * 2
        send = SENDERS[how]
        started, started_cpu = time.perf_counter(), cpu()
        n = 0
        for _ in range(units):
            unit = [(topics[j % 6], keys[(n + j) % 9000], value) for j in range(per_unit)]
            n += per_unit
            await send(producer, unit)
        wall, used = time.perf_counter() - started, cpu() - started_cpu
    finally:
        await producer.stop()
    return {"records": n, "cpu_us_per_record": round(used / n * 1e6, 2),
            "records_per_s": round(n / wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=40)
    parser.add_argument("--per-unit", type=int, default=2300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    exit_on_sigterm()
    broker = Broker()
    try:
        results: dict[str, list[dict[str, float]]] = {how: [] for how in SENDERS}
        for _ in range(args.rounds):
            for how in SENDERS:
                result = asyncio.run(measure(broker.bootstrap, how, args.units, args.per_unit))
                log(f"{how}: {result}")
                results[how].append(result)
        print(json.dumps(results, indent=2))
    finally:
        broker.close()


if __name__ == "__main__":
    main()
