"""The warehouse end to end: stage-history records on the real broker, the
committed JDBC sink configuration running in a real Kafka Connect worker,
a real PostgreSQL, and the committed interval SQL on what it wrote.

Then the same records are delivered again, as a replay or a redelivery
would, and the table must not change: that is what the deterministic
record id and the upsert on it promise.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]

from processor.devstack import create_topics
from processor.devstack.connect import LocalConnect
from processor.devstack.postgres import LocalPostgres
from tests.stream.support import PARTITIONS, Kafka, wait_for

from .conftest import NewDatabase
from .support import (
    Published,
    as_row,
    connector,
    interval_rows,
    keyed_messages,
    reference_intervals,
    sql,
    table_rows,
)

pytestmark = pytest.mark.integration

CATCH_UP_SECONDS = 120.0


@pytest.fixture
def kafka(kafka_bootstrap: str) -> Iterator[Kafka]:
    with Kafka(kafka_bootstrap) as client:
        yield client


def _committed(kafka: Kafka, group: str, topic: str) -> dict[int, int]:
    async def fetch() -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    result: dict[int, int] = kafka.run(fetch())
    return result


def _caught_up(kafka: Kafka, connect: LocalConnect, name: str, topic: str) -> None:
    """Wait until the sink has committed every offset of the topic.

    A sink task commits an offset only after the rows before it were
    written, so once the group stands at the end offsets the table holds
    everything that was produced.
    """
    ends = {p: o for p, o in kafka.end_offsets(topic).items() if o > 0}

    def done() -> bool:
        status = connect.connector_status(name)
        failed = [t for t in status["tasks"] if t["state"] == "FAILED"]
        assert not failed, failed[0].get("trace")
        committed = _committed(kafka, f"connect-{name}", topic)
        return all(committed.get(p, 0) >= o for p, o in ends.items())

    wait_for(done, CATCH_UP_SECONDS, f"sink {name} committing {ends}", interval=0.5)


def _columns(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(
            "select column_name, data_type, is_nullable, column_default "
            "from information_schema.columns where table_name = 'forecast_stage_history' "
            "order by column_name"
        )
        return list(cur.fetchall())


def test_sink_upserts_history_and_a_replay_changes_nothing(
    kafka: Kafka,
    connect: LocalConnect,
    postgres: LocalPostgres,
    new_database: NewDatabase,
    published: Published,
) -> None:
    latest = published.latest()
    versions = Counter(r.record_id for r in published.records)
    # The delivery really was bad: records re-published with new values,
    # transitions retracted, deletions and restores.
    assert sum(1 for n in versions.values() if n > 1) >= 5
    assert any(r.retracted for r in latest.values())
    assert {r.transition for r in latest.values()} >= {"deleted", "restored", "stage_changed"}

    database, conn = new_database()
    suffix = uuid.uuid4().hex[:10]
    topic, name = f"wh-stage-history-{suffix}", f"wh-stage-history-{suffix}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    messages = keyed_messages(published.records)
    kafka.produce(topic, messages)

    config = connector("stage-history.jdbc-sink.json")["config"]
    connect.put_connector(
        name, {**config, "topics": topic, "connection.url": postgres.jdbc_url(database)}
    )
    try:
        connect.wait_running(name)
        _caught_up(kafka, connect, name, topic)

        expected = {record_id: as_row(r) for record_id, r in latest.items()}
        first = table_rows(conn)
        assert first == expected

        intervals = interval_rows(conn)
        reference = reference_intervals(expected.values())
        assert len(reference) >= 80
        assert intervals == reference

        # The table the sink created is the one the committed DDL creates.
        _, ddl_conn = new_database()
        ddl_conn.execute(sql("forecast_stage_history.sql"))
        ddl_conn.commit()
        assert _columns(conn) == _columns(ddl_conn)

        # Replay: the same records again, in the same order.
        kafka.produce(topic, messages)
        _caught_up(kafka, connect, name, topic)
        assert table_rows(conn) == first
        assert interval_rows(conn) == intervals
    finally:
        connect.delete_connector(name)
