"""Writing what one message changed in a Faust table: straight into its
store, and to its changelog as one record batch (``processor.stream.
batches``), built and queued in order behind the earlier writes while the
caller goes on, and acknowledged before the message is.

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
RocksDB, into the database of the batch's partition, in one WriteBatch) and,
once acknowledged, the changelog offset the
RocksDB store persists so a restart reads only the changelog's tail. Tested
on both stores in ``tests/stream`` (restart and SIGKILL recovery).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, ItemsView, Iterator, Mapping, MutableMapping
from typing import Any

from faust.types import TP

from processor.stream.batches import BatchSender
from processor.stream.failures import Origin, Publish, run_acked

Writes = Mapping[bytes, bytes | None]
"""Key -> new bytes, or None for a deleted key."""

Persist = Callable[[MutableMapping[bytes, bytes], Writes, int], Awaitable[Awaitable[None]]]
"""Stores the writes one message of one partition made and sends them to
the table's changelog; what it returns completes once the changelog has
them. The store is written before it returns, and a table's writes reach
its changelog in the order they were persisted, so a caller may go on
before the changelog answers (the native state agent does) as long as it
acks its input only once it has."""


def done() -> asyncio.Future[None]:
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    finished.set_result(None)
    return finished


async def write_mapping(
    table: MutableMapping[bytes, bytes], writes: Writes, partition: int
) -> Awaitable[None]:
    """Plain mapping writes (a Faust table sends each to its changelog by
    itself; a dict in a test has none)."""
    for key, value in writes.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return done()


def write_through_changelog(sender: BatchSender) -> Persist:
    """``Persist`` for a Faust table, sending through the app's producer."""

    async def persist(
        table: MutableMapping[bytes, bytes], writes: Writes, partition: int
    ) -> Awaitable[None]:
        faust_table: Any = table
        store = faust_table.data
        topic = faust_table.changelog_topic.get_topic_name()
        write_store(store, writes, partition)
        if not writes:
            return done()
        # Built and queued behind the earlier persists, while the caller
        # goes on (13% more events/s than awaiting it, bench/README.md).
        queued = sender.send_in_order({(topic, partition): list(writes.items())})

        async def confirmed() -> None:
            sent = await queued
            last = await asyncio.gather(*(batch.last_offset() for batch in sent))
            store.set_persisted_offset(TP(topic, partition), max(last))

        return asyncio.ensure_future(confirmed())

    return persist


def write_store(store: Any, writes: Writes, partition: int) -> None:
    """A Faust RocksDB store gets the writes as one WriteBatch on the
    partition's database, as its own changelog recovery writes them: one
    write-ahead-log append per batch instead of one per key. Any other store
    (memory://) through its mapping interface."""
    db_for_partition = getattr(store, "_db_for_partition", None)
    if db_for_partition is None or not getattr(store, "use_rocksdict", False):
        for key, value in writes.items():
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        return
    import rocksdict  # only installed with the RocksDB extra

    batch = rocksdict.WriteBatch(raw_mode=True)
    key_index = store._key_index
    for key, value in writes.items():
        if value is None:
            batch.delete(key)
            key_index.pop(key, None)
        else:
            batch.put(key, value)
            key_index[key] = partition
    db_for_partition(partition).write(batch)


Handler = Callable[[bytes, int, "PendingWrites"], Awaitable[None]]
"""Handles one message's value on a partition, writing to the table given."""


async def run_table_agent(
    stream: Any,
    app: Any,
    table: MutableMapping[bytes, bytes],
    handle: Handler,
    *,
    agent: str,
    publish: Publish,
    persist: Persist,
    dead_letter_topic: str,
    forget: Callable[[], None],
) -> None:
    """The loop of an agent that owns ``table``: each message is handled
    against the table with its writes held back, the writes are persisted
    (``persist``: ``write_through_changelog``), and only then is the message
    acked. Acks are manual because Faust's own ack sits in a ``finally``: a
    message whose handling raised or was cancelled would be committed half
    done.
    A failed attempt is retried or dead-lettered (``processor.stream.
    failures``); ``forget`` drops what the handler derived in memory, so a
    re-run starts from the table alone."""

    async def attempt(origin: Origin) -> None:
        pending = PendingWrites(table)
        await handle(origin.value, origin.partition, pending)
        await (await persist(table, pending.writes, origin.partition))

    await run_acked(stream, app, attempt, agent=agent, publish=publish,
                    dead_letter_topic=dead_letter_topic, forget=forget)


class PendingWrites(MutableMapping[bytes, bytes]):
    """A table as one message's handler sees it: reads go through to the
    table, writes and deletes wait in ``writes`` until the handler is done
    and they are persisted together. Lets synchronous table code (the group
    tables' ``apply``) keep its plain mapping interface."""

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self.table = table
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes, default: Any = None) -> Any:
        writes = self.writes
        if key in writes:
            value = writes[key]
            return default if value is None else value
        value = self.table.get(key)
        return default if value is None else value

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def __delitem__(self, key: bytes) -> None:
        if self.get(key) is None:
            raise KeyError(key)
        self.writes[key] = None

    def __iter__(self) -> Iterator[bytes]:
        writes = self.writes
        for key in list(self.table):
            if key not in writes:
                yield key
        for key, value in list(writes.items()):
            if value is not None:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def items(self) -> ItemsView[bytes, bytes]:
        return _Items(self)


class _Items(ItemsView[bytes, bytes]):
    """The table's own items (one pass over its store, not a read per key)
    with the pending writes laid over them."""

    _mapping: PendingWrites

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        pending = self._mapping
        writes = pending.writes
        for key, value in list(pending.table.items()):
            if key not in writes and value is not None:
                yield key, value
        for key, new in list(writes.items()):
            if new is not None:
                yield key, new
