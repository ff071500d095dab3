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
from typing import Any

import psycopg
import pytest

from processor.devstack import create_topics
from processor.devstack.connect import LocalConnect
from processor.devstack.postgres import LocalPostgres
from tests.stream.support import PARTITIONS, Kafka

from .conftest import NewDatabase
from .sinks import caught_up
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
        caught_up(kafka, connect, name, topic)

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
        caught_up(kafka, connect, name, topic)
        assert table_rows(conn) == first
        assert interval_rows(conn) == intervals
    finally:
        connect.delete_connector(name)
