"""The recovery stall detector, fed positions over time."""

from __future__ import annotations

from processor.stream.watchdog import StallWatch, tasks_dump


def test_stuck_only_while_something_remains_and_nothing_moves() -> None:
    watch = StallWatch(limit_seconds=10)
    assert watch.observe(0, remaining=500, position=100) is None
    assert watch.observe(5, remaining=400, position=200) is None   # moving
    assert watch.observe(14, remaining=400, position=200) is None  # 9 s still
    assert watch.observe(15, remaining=400, position=200) == 10    # 10 s: stalled
    assert watch.observe(16, remaining=399, position=201) is None  # moved again
    assert watch.observe(30, remaining=0, position=201) is None     # done: never stuck
    assert watch.observe(45, remaining=0, position=201) is None


def test_a_new_recovery_starts_its_own_clock() -> None:
    watch = StallWatch(limit_seconds=10)
    assert watch.observe(0, remaining=0, position=0) is None
    assert watch.observe(100, remaining=50, position=7) is None    # recovery begins
    assert watch.observe(109, remaining=50, position=7) is None
    assert watch.observe(110, remaining=50, position=7) == 10


def test_the_tasks_dump_shows_the_stacks_of_running_tasks() -> None:
    import asyncio

    async def parked() -> None:
        await asyncio.sleep(3600)

    async def run() -> str:
        task = asyncio.ensure_future(parked())
        await asyncio.sleep(0)
        try:
            return tasks_dump()
        finally:
            task.cancel()

    assert "parked" in asyncio.run(run())
