"""Commits that never pass a message nobody handled.

Faust commits, per partition, the end of the first run of consecutive acked
offsets. It checks that run against the last commit only loosely: not at all
while the partition has no commit yet (or its commit is 0), and with an off
by one otherwise (``min(acked) - committed > 1``). A message it drops lets
the commit pass it, and its changes are lost for good: the fetcher drops a
message whose agent queue is full when a rebalance stops the flow, and relies
on the seek to the committed offsets that follows to read it again (aiokafka
skips that seek for a partition never committed). Two defects of this kind
were found through the broker (a SIGKILL right after the first batches, and
one opportunity missing from stage history after two workers split the
partitions); both lost data silently.

:class:`GaplessCommits` makes the commit hold instead, and heal:

- after every seek to the committed offsets it knows where each partition
  of an acked topic resumes, and seeks a partition never committed to its
  first offset (what the ``earliest`` reset means anyway);
- a partition whose first acked offset is past where it resumed, or past its
  last commit, is not committed; if the hole is still there
  ``HEAL_AFTER_SECONDS`` later, the partition is sought back to it and read
  again. What was handled in between comes again, and the engine absorbs
  the repeat (keyed records, events deduplicated by id), while the commit
  covers it only once everything before it was handled. A hole the broker's
  retention made (offsets that no longer exist) is skipped, with a warning.

Targets faust-streaming 0.15.x; written against 0.15.3's
``Consumer._new_offset`` (``faust/transport/consumer.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from time import monotonic
from typing import Any

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.utils.functional import consecutive_numbers

from processor.stream import metrics

log = logging.getLogger(__name__)

HEAL_AFTER_SECONDS = 5.0
"""How long a hole before the acked offsets may stay before the partition is
read again from it. Acks follow offset order in every agent here, so a hole
is never a message still being handled; the wait only keeps a seek from
racing the rebalance that caused the drop."""


class GaplessCommits(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with commits that hold at a hole."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resumes_at: dict[TP, int] = {}
        self._holes: dict[TP, tuple[int, float]] = {}
        self._healing: dict[TP, asyncio.Task[None]] = {}

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await super().seek_to_committed()
        acked = self.app.topics.acks_enabled_for
        never = [tp for tp, offset in committed.items() if not offset and acked(tp.topic)]
        earliest: Mapping[TP, int] = await self.earliest_offsets(*never) if never else {}
        for tp in never:
            await self.seek(tp, earliest[tp])
        self._resumes_at = {tp: offset or earliest.get(tp, 0)
                            for tp, offset in committed.items() if acked(tp.topic)}
        self._holes.clear()
        return committed

    def expected_offset(self, tp: TP) -> int | None:
        """The first offset not yet committed: the last commit, or where the
        partition resumed after the last rebalance; None when unknown."""
        committed = self._committed_offset[tp]
        return committed if committed else self._resumes_at.get(tp)

    def _new_offset(self, tp: TP) -> int | None:
        acked: list[int] = self._acked[tp]
        if not acked:
            return None
        self._merge_gaps(tp, acked)
        acked.sort()
        expected = self.expected_offset(tp)
        if expected is not None and acked[0] > expected:
            self._hole(tp, expected, acked[0])
            return None
        self._holes.pop(tp, None)
        batch = next(consecutive_numbers(acked))
        del acked[: len(batch)]
        self._acked_index[tp].difference_update(batch)
        return int(batch[-1]) + 1

    def _merge_gaps(self, tp: TP, acked: list[int]) -> None:
        """Faust's: offsets known never to come (a jump in fetched offsets,
        such as transaction markers) count as acked."""
        gap_for_tp = self._gap[tp]
        if not gap_for_tp:
            return
        max_offset = max(acked)
        candidates = sorted(gap_for_tp.overlap(0, max_offset), key=lambda x: x.begin)
        if candidates:
            added: list[int] = []
            for entry in candidates:
                added.extend(range(entry.begin, entry.end))
            acked.extend(added)
            gap_for_tp.chop(0, max(added[-1], max_offset + 1))

    def _hole(self, tp: TP, expected: int, first_acked: int) -> None:
        now = monotonic()
        seen = self._holes.get(tp)
        if seen is None or seen[0] != expected:
            self._holes[tp] = (expected, now)
            return
        if now - seen[1] < HEAL_AFTER_SECONDS or tp in self._healing:
            return
        self._holes[tp] = (expected, now)  # heal again later if this one does not
        task = asyncio.ensure_future(self._heal(tp, expected, first_acked))
        self._healing[tp] = task
        task.add_done_callback(lambda _: self._healing.pop(tp, None))

    async def _heal(self, tp: TP, expected: int, first_acked: int) -> None:
        if tp not in self.assignment():
            return
        earliest = (await self.earliest_offsets(tp)).get(tp, expected)
        if earliest > expected:
            log.warning("%s: offsets %d-%d were deleted by retention before they were "
                        "handled; committing past them", tp, expected, earliest - 1)
            self._gap[tp].addi(expected, earliest)
        start = max(expected, earliest)
        metrics.COMMIT_HOLES.labels(topic=tp.topic).inc()
        if start >= first_acked:
            return
        log.warning("%s: offsets %d-%d were never handled (dropped while the group "
                    "rebalanced); the commit holds at %d and they are read again",
                    tp, start, first_acked - 1, start)
        await self.seek(tp, start)
