"""Partitioning by opportunity id, the way Kafka's default partitioner does it,
so the internal topic, the table's changelog and key-routed HTTP requests all
agree on which partition (and so which worker) owns an opportunity."""

from __future__ import annotations

from processor.hygiene_decode import partition_of


class Partitioner:
    """murmur2 natively (``native/decode/src/route.rs``, held to aiokafka's
    by a test): about 0.2 µs a key where aiokafka's pure Python took 5, so
    no memo is kept."""

    __slots__ = ("partitions",)

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def __call__(self, key: str) -> int:
        return partition_of(key.encode(), self.partitions)
