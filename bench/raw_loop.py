"""The ceiling: a plain aiokafka consume-and-produce loop (PERF.md's "plain loop").

getmany batch -> orjson.loads each value -> a trivial per-opportunity dict
state (count, last offset, a field of the payload) -> one output record per
input, sent without awaiting each -> gather the acks -> commit per batch.
Producer settings match the worker's ingest loop (acks=all, idempotent,
linger 5 ms, 1 MiB batches), the consumer the same fetch sizes.

Runs until ``--expected`` records are consumed and acknowledged, then prints
one JSON line: events/s from the first consumed record to the last ack, and
this process's CPU over that window.

    python bench/raw_loop.py --bootstrap 127.0.0.1:9092 --topic in --out-topic out \
        --group raw-1 --expected 201642
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> dict[str, float | int]:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=2 * 1_048_576,
        fetch_max_bytes=64 * 1_048_576,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1_048_576,
        max_request_size=16 * 1_048_576,
    )
    await producer.start()
    await consumer.start()
    state: dict[bytes, dict[str, object]] = {}
    consumed = 0
    first_at = first_cpu = 0.0
    batches = 0
    out = args.out_topic
    try:
        while consumed < args.expected:
            fetched = await consumer.getmany(timeout_ms=200, max_records=args.max_records)
            if not fetched:
                continue
            if consumed == 0:
                first_at, first_cpu = time.perf_counter(), cpu()
            pending = []
            for records in fetched.values():
                for record in records:
                    document = orjson.loads(record.value)
                    key = record.key or b""
                    entry = state.get(key)
                    if entry is None:
                        entry = state[key] = {"count": 0}
                    entry["count"] += 1  # type: ignore[operator]
                    entry["offset"] = record.offset
                    entry["kind"] = type(document).__name__
                    pending.append(
                        await producer.send(
                            out, orjson.dumps(entry), key=key, partition=record.partition
                        )
                    )
                    consumed += 1
            await asyncio.gather(*pending)
            await consumer.commit()
            batches += 1
        last_at, last_cpu = time.perf_counter(), cpu()
    finally:
        await consumer.stop()
        await producer.stop()
    wall = last_at - first_at
    return {
        "events": consumed,
        "batches": batches,
        "keys": len(state),
        "seconds": round(wall, 3),
        "events_per_s": round(consumed / wall, 1),
        "cpu_seconds": round(last_cpu - first_cpu, 3),
        "cpu_share": round((last_cpu - first_cpu) / wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument(
        "--max-records",
        type=int,
        default=5000,
        help="getmany max_records (the worker's ingest uses 5000)",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
