"""The two Faust overrides of processor.stream.recovery, step by step on a
Faust app that is built but not started (no broker): what the bulk changelog
loop applies, and which changelog records the consumer hands to the queue
itself and which it leaves to Faust's fetcher. Recovery end to end, through
a broker, is in test_recovery_integration.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

from processor.stream.recovery import (
    BulkRecovery,
    ChangelogConsumer,
    RecoveryTableManager,
)
from processor.stream.transport import install


def _app(buffer: int = 3) -> tuple[Any, Any]:
    app = faust.App("t-recovery-overrides", broker="kafka://127.0.0.1:1", store="memory://",
                    TableManager=RecoveryTableManager, autodiscover=False)
    install(app)
    table = app.Table("states", partitions=2, key_type=bytes, value_type=bytes,
                      recovery_buffer_size=buffer)
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return app, table


def _message(tp: TP, offset: int, key: bytes, value: bytes | None) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, [], key, value, None, tp=tp)


def _event(app: Any, tp: TP, offset: int, key: bytes, value: bytes | None) -> Any:
    return app.create_event(key, value, [], _message(tp, offset, key, value))


def _tp(table: Any, partition: int) -> TP:
    return TP(table.changelog_topic.get_topic_name(), partition)


def test_the_bulk_loop_applies_each_new_offset_once_and_flushes_per_buffer() -> None:
    async def run() -> None:
        app, table = _app(buffer=3)
        recovery = app.tables.recovery
        assert isinstance(recovery, BulkRecovery)
        tp0, tp1 = _tp(table, 0), _tp(table, 1)
        recovery.add_active(table, tp0)
        recovery.add_active(table, tp1)
        recovery._set_recovery_started()
        events = [
            _event(app, tp0, 0, b"a", b"a0"),
            _event(app, tp0, 1, b"b", b"b1"),
            _event(app, tp1, 0, b"c", b"c0"),
            _event(app, tp0, 1, b"b", b"stale"),  # offset already seen: skipped
            _event(app, tp0, 2, b"a", b"a2"),  # overwrites a
            _event(app, tp0, 3, b"b", None),  # deletes b
        ]
        await recovery._apply_events(events)
        assert recovery.active_offsets[tp0] == 3 and recovery.active_offsets[tp1] == 0
        # Flushed once, at the third applied event; the rest waits in the buffer.
        assert dict(table.data.data) == {b"a": b"a0", b"b": b"b1", b"c": b"c0"}
        assert len(recovery.buffers[table]) == 2
        recovery.flush_buffers()
        assert dict(table.data.data) == {b"a": b"a2", b"c": b"c0"}
        # Faust's time-remaining estimate: one sample per applied event, from the second batch.
        assert len(recovery._processing_times) == 0
        await recovery._apply_events([_event(app, tp1, 1, b"d", b"d1"),
                                      _event(app, tp1, 2, b"e", b"e2")])
        assert len(recovery._processing_times) == 2

    asyncio.run(run())


def test_the_bulk_loop_applies_standbys_and_skips_a_partition_no_longer_assigned() -> None:
    async def run() -> None:
        app, table = _app(buffer=1)
        recovery = app.tables.recovery
        tp0, tp1, tp2 = _tp(table, 0), _tp(table, 1), TP(table.changelog_topic_name, 2)
        recovery.add_active(table, tp0)
        recovery.add_standby(table, tp1)
        recovery._set_recovery_started()
        await recovery._apply_events([_event(app, tp0, 0, b"a", b"a0"),
                                      _event(app, tp1, 7, b"s", b"s7"),
                                      _event(app, tp2, 0, b"z", b"revoked")])
        assert dict(table.data.data) == {b"a": b"a0", b"s": b"s7"}
        assert recovery.active_offsets[tp0] == 0 and recovery.standby_offsets[tp1] == 7
        assert tp2 not in recovery.active_offsets and tp2 not in recovery.standby_offsets
        # Faust's time-remaining estimate counts active events only.
        await recovery._apply_events([_event(app, tp1, 8, b"s", b"s8")])
        assert len(recovery._processing_times) == 0

    asyncio.run(run())


def test_recovery_ends_once_every_active_partition_reached_its_highwater() -> None:
    async def run() -> None:
        app, table = _app(buffer=10)
        recovery = app.tables.recovery
        tp0 = _tp(table, 0)
        recovery.add_active(table, tp0)
        recovery.active_highwaters[tp0] = 1
        recovery._set_recovery_started()
        await recovery._apply_events([_event(app, tp0, 0, b"a", b"a0")])
        await recovery._maybe_signal_recovery_end(False, 0)
        assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()
        await recovery._apply_events([_event(app, tp0, 1, b"b", b"b1")])
        await recovery._maybe_signal_recovery_end(False, 0)
        assert not recovery.in_recovery and recovery.signal_recovery_end.is_set()
        assert dict(table.data.data) == {b"a": b"a0", b"b": b"b1"}  # buffers flushed

    asyncio.run(run())


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[TP, Message]]]:
    """What Faust's own ``getmany`` yields to the override (no broker here)."""
    records: list[tuple[TP, Message]] = []

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        for record in records:
            yield record

    monkeypatch.setattr(aiokafka_driver.Consumer, "getmany", getmany)
    yield records


def _consumer(app: Any, table: Any) -> ChangelogConsumer:
    tables = app.tables
    tables._channels[table] = table.changelog_topic.clone_using_queue(tables.changelog_queue)
    consumer = app.consumer
    assert isinstance(consumer, ChangelogConsumer)
    return consumer


async def _drain(consumer: ChangelogConsumer) -> list[tuple[TP, Message]]:
    return [record async for record in consumer.getmany(timeout=0)]


def test_the_consumer_queues_changelog_records_itself_while_flow_is_open(
    fetched: list[tuple[TP, Message]],
) -> None:
    async def run() -> None:
        app, table = _app()
        consumer = _consumer(app, table)
        app.flow_control.resume()
        tp = _tp(table, 0)
        other = TP("t-recovery-overrides.changes", 0)
        fetched.extend([(tp, _message(tp, 5, b"a", b"a5")), (other, _message(other, 0, b"k", b"v")),
                        (tp, _message(tp, 6, b"b", None))])
        passed = await _drain(consumer)
        assert [m.topic for _, m in passed] == [other.topic]  # not a changelog: Faust's path
        queue = app.tables.changelog_queue
        queued = [queue.get_nowait() for _ in range(queue.qsize())]
        assert [(e.message.offset, e.key, e.value) for e in queued] == [(5, b"a", b"a5"),
                                                                       (6, b"b", None)]
        assert consumer._read_offset[tp] == 6
        # Already read (a fetch repeated after a seek): dropped, as Faust's fetcher does.
        fetched[:] = [(tp, _message(tp, 4, b"a", b"old"))]
        assert await _drain(consumer) == [] and queue.empty()

    asyncio.run(run())


def test_the_consumer_leaves_changelog_records_to_faust_when_flow_is_held_or_queue_full(
    fetched: list[tuple[TP, Message]],
) -> None:
    async def run() -> None:
        app, table = _app()
        consumer = _consumer(app, table)
        tp = _tp(table, 0)
        fetched.append((tp, _message(tp, 0, b"a", b"a0")))
        queue = app.tables.changelog_queue
        app.flow_control.suspend()  # a rebalance: Faust's fetcher waits or drops it
        assert len(await _drain(consumer)) == 1 and queue.empty()
        app.flow_control.resume()
        consumer.stop_flow()
        assert len(await _drain(consumer)) == 1 and queue.empty()
        consumer.resume_flow()
        for offset in range(queue.maxsize):
            queue.put_nowait(_event(app, tp, offset, b"x", b"x"))
        assert len(await _drain(consumer)) == 1  # full: Faust's fetcher waits for room
        assert consumer._read_offset[tp] is None

    asyncio.run(run())
