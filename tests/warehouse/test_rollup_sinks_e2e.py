"""The rollups and the override ledger in the warehouse, end to end: rows
and ledger records produced by the real rollup code, on the real broker,
through the committed JDBC sink configurations in a real Kafka Connect
worker, into a real PostgreSQL; then the committed latest_rollups.sql must
equal the totals read in Python from the nested rollup snapshots, and a
second delivery of everything must change nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from processor.devstack import create_topics
from processor.devstack.connect import LocalConnect
from processor.devstack.postgres import LocalPostgres
from tests.stream.support import PARTITIONS, Kafka

from .conftest import NewDatabase
from .rollup_support import (
    PublishedRollups,
    latest_rows,
    override_log_rows,
    published_rollups,
    reference_latest,
    reference_override_log,
)
from .sinks import caught_up
from .support import connector, sql

pytestmark = pytest.mark.integration

SINKS = {
    # connector file -> (table, the committed DDL of that table)
    "rollup-rows.jdbc-sink.json": ("forecast_rollup_rows", "forecast_rollup_rows.sql"),
    "override-log.jdbc-sink.json": ("forecast_override_log", "forecast_override_log.sql"),
}


@pytest.fixture(scope="module")
def rollups() -> PublishedRollups:
    return published_rollups()


def _columns(conn: psycopg.Connection[Any], table: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(
            "select column_name, data_type, is_nullable, column_default "
            "from information_schema.columns where table_name = %s order by column_name",
            (table,))
        return list(cur.fetchall())


def _all_rows(conn: psycopg.Connection[Any], table: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(f"select * from {table} order by 1")
        return list(cur.fetchall())


@pytest.fixture
def sinks(
    kafka: Kafka, connect: LocalConnect, postgres: LocalPostgres, new_database: NewDatabase
) -> Iterator[tuple[psycopg.Connection[Any], dict[str, str]]]:
    """Both sinks running into one fresh database, each on its own topic:
    the connection and connector file -> topic."""
    database, conn = new_database()
    suffix = uuid.uuid4().hex[:10]
    topics = {name: f"wh-{name.split('.')[0]}-{suffix}" for name in SINKS}
    create_topics(kafka.bootstrap, dict.fromkeys(topics.values(), PARTITIONS))
    started: list[str] = []
    try:
        for name, topic in topics.items():
            config = connector(name)["config"]
            connect.put_connector(
                topic, {**config, "topics": topic, "connection.url": postgres.jdbc_url(database)})
            started.append(topic)
        yield conn, topics
    finally:
        for topic in started:
            connect.delete_connector(topic)


def test_sinks_rebuild_the_latest_rollups_and_a_replay_changes_nothing(
    kafka: Kafka,
    connect: LocalConnect,
    new_database: NewDatabase,
    rollups: PublishedRollups,
    sinks: tuple[psycopg.Connection[Any], dict[str, str]],
) -> None:
    conn, topics = sinks
    rows_topic = topics["rollup-rows.jdbc-sink.json"]
    log_topic = topics["override-log.jdbc-sink.json"]
    for topic in topics.values():
        connect.wait_running(topic)
    kafka.produce(rows_topic, rollups.rows)
    kafka.produce(log_topic, rollups.override_log)
    for topic in topics.values():
        caught_up(kafka, connect, topic, topic)

    reference = reference_latest(rollups.latest)
    # What the scenario must exercise for the comparison to mean something.
    assert {r[18] for r in reference} == {"system", "override"}
    assert any(r[12] is not None and r[7] == 0 for r in reference)  # override, no deal
    assert any(r[19] not in (None, r[5]) for r in reference)  # overridden in another currency
    assert any(r[9] > 0 for r in reference) and any(r[11] > 0 for r in reference)
    first = latest_rows(conn)
    assert first == reference
    with conn.cursor() as cur:
        cur.execute("select count(*) from forecast_rollup_rows "
                    "where count = 0 and override_id is null")
        (zeroed,) = cur.fetchone() or (0,)
    assert zeroed >= 2  # rows that would have been stale: published again as zeros

    assert override_log_rows(conn) == reference_override_log(rollups.override_log)
    assert len(rollups.override_log) == 4

    # The tables the sinks created are the ones the committed DDL creates.
    _, ddl_conn = new_database()
    for table, ddl in SINKS.values():
        ddl_conn.execute(sql(ddl))
        ddl_conn.commit()
        assert _columns(conn, table) == _columns(ddl_conn, table), table

    # Replay: everything again, in the same order.
    tables = {table: _all_rows(conn, table) for table, _ in SINKS.values()}
    kafka.produce(rows_topic, rollups.rows)
    kafka.produce(log_topic, rollups.override_log)
    for topic in topics.values():
        caught_up(kafka, connect, topic, topic)
    assert {table: _all_rows(conn, table) for table in tables} == tables
    assert latest_rows(conn) == first
