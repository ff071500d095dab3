"""``processor.stream.draining`` on its own: what is queued is taken
together, nothing waits for more, and units keep each partition's order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from processor.stream import messages
from processor.stream.draining import drained, units
from schemas import OpportunityChange


async def collect(source: AsyncIterator[int], limit: int) -> list[list[int]]:
    return [batch async for batch in drained(source, limit)]


def test_what_is_already_queued_comes_together_up_to_the_limit() -> None:
    async def burst() -> AsyncIterator[int]:
        for i in range(10):
            yield i

    batches = asyncio.run(collect(burst(), limit=4))
    assert [x for b in batches for x in b] == list(range(10))
    assert max(map(len, batches)) <= 4
    assert len(batches) < 10  # some were taken together


def test_nothing_waits_for_more_than_is_queued() -> None:
    async def main() -> list[tuple[float, list[int]]]:
        release = asyncio.Event()

        async def slow() -> AsyncIterator[int]:
            yield 1
            await release.wait()
            yield 2

        got: list[tuple[float, list[int]]] = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        async for batch in drained(slow(), 16):
            got.append((loop.time() - start, batch))
            release.set()
        return got

    got = asyncio.run(main())
    assert [b for _, b in got] == [[1], [2]]
    assert got[0][0] < 0.5  # the first came alone, at once


def test_an_error_of_the_stream_is_raised_to_the_reader() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("consumer gone")

    async def main() -> list[list[int]]:
        seen = []
        async for batch in drained(failing(), 16):
            seen.append(batch)
        return seen

    with pytest.raises(RuntimeError, match="consumer gone"):
        asyncio.run(main())


@dataclass
class Message:
    partition: int
    offset: int


@dataclass
class Event:
    message: Message
    value: bytes


def change(opportunity: str, event: str) -> OpportunityChange:
    return OpportunityChange(source="generic", event_id=event, opportunity_id=opportunity,
                             occurred_at=datetime(2026, 3, 2, tzinfo=UTC), op="upsert",
                             fields={"stage": "Prospecting"})


def batch_event(partition: int, offset: int, *events: str) -> Event:
    return Event(Message(partition, offset),
                 messages.encode_changes([change("opp-" + e, e) for e in events]))


def test_units_merge_runs_of_change_batches_per_partition_in_order() -> None:
    queued = [
        batch_event(0, 10, "a", "b"),
        batch_event(1, 5, "x"),
        batch_event(0, 11, "c"),
        Event(Message(0, 12), messages.encode_sweep(1_000)),
        batch_event(0, 13, "d"),
        Event(Message(0, 14), b'{"kind": "changes", "changes": [{"opportunity_id": 7}]}'),
        batch_event(0, 15, "e"),
        batch_event(0, 16, "f"),
    ]
    found = [(u.partition, [e.message.offset for e in u.events], u.offset, type(u.message).__name__,
              [c.event_id for c in getattr(u.message, "changes", [])]) for u in units(queued)]
    assert found == [
        (0, [10, 11], 11, "ChangeBatch", ["a", "b", "c"]),
        (0, [12], 12, "SweepTick", []),
        (0, [13], 13, "ChangeBatch", ["d"]),
        (0, [14], 14, "NoneType", []),  # does not decode: on its own, to be dead-lettered
        (0, [15, 16], 16, "ChangeBatch", ["e", "f"]),
        (1, [5], 5, "ChangeBatch", ["x"]),
    ]

