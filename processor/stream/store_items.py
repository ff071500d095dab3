"""A table's stored items together with the partition each one lives on.

Rebuilding the sweep's due index after an assignment needs every stored
key's partition. Hashing a million keys with aiokafka's pure-Python murmur2
costs 5-7 s, more than the whole sweep budget, while Faust's stores already
know: the RocksDB store keeps one database per partition, the memory store
remembers the partition of every key it recovered from the changelog. This
reads those (private) structures, and answers ``None`` for a key whose
partition the store does not know (a memory-store key written live), so the
caller hashes only those. Any store this module does not recognise is read
through the table's public mapping interface, all partitions unknown.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Item = tuple[bytes, bytes, int | None]


def partitioned_items(table: Mapping[bytes, bytes]) -> Iterator[Item]:
    store: Any = getattr(table, "data", None)
    dbs = getattr(store, "_dbs", None)
    visible = getattr(store, "_visible_items", None)
    if isinstance(dbs, dict) and callable(visible):  # rocksdb: one database per partition
        for partition, db in list(dbs.items()):
            for key, value in visible(db):
                yield key, value, partition
        return
    data = getattr(store, "data", None)
    known = getattr(store, "_key_partition", None)
    if isinstance(data, dict) and isinstance(known, dict):  # memory store
        for key, value in list(data.items()):
            yield key, value, known.get(key)
        return
    for key, value in list(table.items()):
        yield key, value, None
