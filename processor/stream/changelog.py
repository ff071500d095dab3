"""Writing one batch of states to a Faust table: straight into its store,
and to its changelog with one unawaited send per key, all acknowledged
before the batch is.

Why not ``table[key] = value``: Faust sends every table write to the
changelog through its producer buffer (a FutureMessage, a hop through the
buffer's task and a callback per key), which profiles put at about a tenth
of the worker's CPU; and nothing ties that send to the input offset's
commit, so a worker killed between the commit and the buffer's flush could
restart from a changelog missing a state whose changes were committed. Here
the batch's changelog records are sent the way the outputs are and awaited
before the state agent acks the batch: the commit can never pass a state
the changelog does not hold.

What Faust's own write does besides the send is kept: the store write (for
RocksDB, into the database of the batch's partition, which the store takes
from the current event) and, once acknowledged, the changelog offset the
RocksDB store persists so a restart reads only the changelog's tail. Tested
on both stores in ``tests/stream`` (restart and SIGKILL recovery).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from faust.types import TP

Persist = Callable[[MutableMapping[bytes, bytes], dict[bytes, bytes], int], Awaitable[None]]
"""Stores (key -> state bytes) written by one batch of one partition."""


async def write_mapping(
    table: MutableMapping[bytes, bytes], writes: dict[bytes, bytes], partition: int
) -> None:
    """Plain mapping writes (a Faust table sends each to its changelog)."""
    for key, value in writes.items():
        table[key] = value


def write_through_changelog(app: Any) -> Persist:
    """``Persist`` for a Faust table of this app (``app.producer`` is only
    started with the worker, so it is looked up per batch)."""

    async def persist(
        table: MutableMapping[bytes, bytes], writes: dict[bytes, bytes], partition: int
    ) -> None:
        faust_table: Any = table
        store = faust_table.data
        topic = faust_table.changelog_topic.get_topic_name()
        producer = app.producer
        pending = []
        for key, value in writes.items():
            store[key] = value
            pending.append(await producer.send(topic, key, value, partition, None, None))
        if pending:
            sent = await asyncio.gather(*pending)
            store.set_persisted_offset(TP(topic, partition), max(m.offset for m in sent))

    return persist
