"""The local broker must behave like the production one for what the processor relies on:
keyed partitioning over explicitly created topics and consumer-group delivery with commits."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)

from processor.devstack import create_topics

pytestmark = pytest.mark.integration

MESSAGES = 100
PARTITIONS = 4


async def _produce(bootstrap: str, topic: str) -> dict[int, list[tuple[int, bytes]]]:
    """Returns, per partition, the (offset, value) pairs the broker acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode())
            for i in range(MESSAGES)
        ]
        metadata = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    acked: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for i, meta in enumerate(metadata):
        acked[meta.partition].append((meta.offset, f"value-{i}".encode()))
    return acked


async def _consume(bootstrap: str, topic: str, group: str) -> dict[int, list[tuple[int, bytes]]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        received: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        count = 0
        while count < MESSAGES:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                received[tp.partition].extend((r.offset, r.value) for r in records)
                count += len(records)
        await consumer.commit()
        committed = {
            p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)
        }
    finally:
        await consumer.stop()
    assert committed == {p: len(received.get(p, [])) for p in range(PARTITIONS)}
    return received


def test_round_trip_through_consumer_group(kafka_bootstrap: str) -> None:
    topic = f"devstack-roundtrip-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: PARTITIONS})

    async def scenario() -> None:
        acked = await _produce(kafka_bootstrap, topic)
        assert set(acked) == set(range(PARTITIONS)), "keys should spread over all partitions"
        received = await _consume(kafka_bootstrap, topic, f"devstack-{uuid.uuid4().hex[:8]}")
        assert dict(received) == dict(acked)

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_create_topics_is_idempotent_but_rejects_a_different_partition_count(
    kafka_bootstrap: str,
) -> None:
    topic = f"devstack-idempotent-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2}, config={"cleanup.policy": "compact"})
    create_topics(kafka_bootstrap, {topic: 2})
    with pytest.raises(ValueError, match="exists with 2 partitions"):
        create_topics(kafka_bootstrap, {topic: 3})


def test_a_machine_without_java_or_maven_gets_them_from_debian(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Nothing installed by hand: a missing ``java`` or ``mvn`` is asked of
    apt (here recorded, not run), and still missing gives a clear error."""
    from processor.devstack import apt, kafka, maven

    asked: list[str] = []
    monkeypatch.setattr(apt, "apt_install", asked.append)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(RuntimeError, match="apt-get install openjdk-17-jre-headless"):
        kafka.java_binary()
    with pytest.raises(RuntimeError, match="Maven"):
        maven.fetch_jars("<project/>", tmp_path / "jars", what="jars", expect="*.jar")
    assert asked == [kafka.JAVA_PACKAGE, "maven"]
