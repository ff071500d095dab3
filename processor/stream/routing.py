"""Partitioning by opportunity id, the way Kafka's default partitioner does it,
so the internal topic, the table's changelog and key-routed HTTP requests all
agree on which partition (and so which worker) owns an opportunity."""

from __future__ import annotations

from aiokafka.partitioner import murmur2  # type: ignore[import-untyped, unused-ignore]


class Partitioner:
    """murmur2 is pure Python in aiokafka (~5 µs); a bounded memo makes
    routing a dict lookup for opportunities seen recently."""

    __slots__ = ("_memo", "partitions")
    _LIMIT = 2_000_000

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._memo: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        partition = self._memo.get(key)
        if partition is None:
            if len(self._memo) >= self._LIMIT:
                self._memo.clear()
            partition = (murmur2(key.encode()) & 0x7FFFFFFF) % self.partitions
            self._memo[key] = partition
        return partition
