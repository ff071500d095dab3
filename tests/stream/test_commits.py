"""processor.stream.commits step by step on a Faust app that is built but
not started (no broker): when the commit holds, when it goes on, and the
seek back to a hole that stays. Through the broker:
test_commits_integration.py."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.types import TP

from processor.stream import commits
from processor.stream.commits import GaplessCommits
from processor.stream.transport import install

TP0 = TP("t-commits.changes", 0)


def _consumer() -> Any:
    app = faust.App("t-commits", broker="kafka://127.0.0.1:1", store="memory://",
                    autodiscover=False)
    install(app)
    consumer = app.consumer
    assert isinstance(consumer, GaplessCommits)
    return consumer


def _ack(consumer: Any, *offsets: int) -> None:
    consumer._acked[TP0].extend(offsets)
    consumer._acked_index[TP0].update(offsets)


def test_a_partition_never_committed_commits_only_from_where_it_resumed() -> None:
    consumer = _consumer()
    consumer._resumes_at = {TP0: 0}
    _ack(consumer, 1, 2, 3)
    assert consumer._new_offset(TP0) is None  # Faust alone: 4, and offset 0 lost
    _ack(consumer, 0)
    assert consumer._new_offset(TP0) == 4
    assert not consumer._acked[TP0]


def test_one_missing_offset_after_a_commit_holds_it() -> None:
    consumer = _consumer()
    consumer._committed_offset[TP0] = 5  # 0-4 done, 5 next
    _ack(consumer, 6, 7)
    assert consumer._new_offset(TP0) is None  # Faust alone: 8 (its check is off by one)
    _ack(consumer, 5)
    assert consumer._new_offset(TP0) == 8


def test_offsets_known_never_to_come_count_as_handled() -> None:
    consumer = _consumer()
    consumer._committed_offset[TP0] = 5
    consumer._gap[TP0].addi(5, 7)  # e.g. transaction markers
    _ack(consumer, 7, 8)
    assert consumer._new_offset(TP0) == 9


def test_without_a_known_start_faust_rules_apply() -> None:
    consumer = _consumer()
    _ack(consumer, 3, 4, 6)
    assert consumer._new_offset(TP0) == 5


def _on_a_broker(earliest: int) -> tuple[Any, list[tuple[TP, int]]]:
    """A consumer whose broker calls (seek, earliest offsets, assignment)
    answer as a broker whose log starts at ``earliest``; the seeks are kept."""
    consumer = _consumer()
    seeks: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    async def earliest_offsets(*tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, earliest)

    consumer.seek = seek
    consumer.earliest_offsets = earliest_offsets
    consumer.assignment = lambda: {TP0}
    return consumer, seeks


def test_a_hole_that_stays_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commits, "HEAL_AFTER_SECONDS", 0.0)

    async def run() -> None:
        consumer, seeks = _on_a_broker(earliest=0)
        consumer._committed_offset[TP0] = 5
        _ack(consumer, 7, 8)
        assert consumer._new_offset(TP0) is None  # first seen: only noted
        assert not consumer._healing
        assert consumer._new_offset(TP0) is None  # still there: read again from 5
        await asyncio.gather(*consumer._healing.values())
        assert seeks == [(TP0, 5)]

    asyncio.run(run())


def test_a_hole_retention_deleted_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commits, "HEAL_AFTER_SECONDS", 0.0)

    async def run() -> None:
        consumer, seeks = _on_a_broker(earliest=7)  # 5 and 6 are gone
        consumer._committed_offset[TP0] = 5
        _ack(consumer, 7, 8)
        consumer._new_offset(TP0)
        consumer._new_offset(TP0)
        await asyncio.gather(*consumer._healing.values())
        assert seeks == []
        assert consumer._new_offset(TP0) == 9

    asyncio.run(run())
