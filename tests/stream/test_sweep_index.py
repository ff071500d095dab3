"""Sweeps touch only opportunities that are due, and still find everything a
full evaluation would."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.rules import default_rules
from processor.simulate import simulate
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings
from processor.stream.messages import ChangeBatch, SweepTick
from processor.stream.routing import Partitioner
from processor.stream.state import StateProcessor, Topics, due_of, dump_state, load_state
from schemas import OpportunityChange

PARTITIONS = 4


def test_due_sweeps_match_full_evaluation_and_do_nothing_twice() -> None:
    rules = default_rules()
    sim = simulate(opportunities=150, days=90, seed=2, fmt="mixed",
                   start=datetime(2026, 1, 1, tzinfo=UTC), rules=rules)
    route = Partitioner(PARTITIONS)
    batches: dict[int, list[OpportunityChange]] = {p: [] for p in range(PARTITIONS)}
    for raw in sim.events:
        for change in decode(raw, FieldMappings()).changes:
            batches[route(change.opportunity_id)].append(change)
    processor = StateProcessor(Engine(rules), Topics("a", "h", "c", "d"), PARTITIONS)
    table: dict[bytes, bytes] = {}
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def publish(records: list[tuple[str, bytes | None, bytes]]) -> None:
        sent.extend(records)

    async def scenario() -> tuple[int, int]:
        for partition, changes in batches.items():
            await processor.handle_changes(ChangeBatch(changes=changes), partition, table,
                                           publish)
        as_of = to_ms(sim.as_of)
        processor.index.forget()  # as after a rebalance: rebuilt from stored bytes
        before = len(sent)
        for partition in range(PARTITIONS):
            await processor.handle_sweep(SweepTick(at_ms=as_of), partition, table, publish)
        first = len(sent) - before
        for partition in range(PARTITIONS):
            await processor.handle_sweep(SweepTick(at_ms=as_of), partition, table, publish)
        return first, len(sent) - before - first

    first, second = asyncio.run(scenario())
    assert first > 0 and second == 0
    engine = Engine(rules)
    as_of = to_ms(sim.as_of)
    for raw in table.values():
        state = load_state(raw)
        assert state is not None
        assert set(engine.findings(state, as_of)) == set(state.open_alerts)
        assert due_of(raw) == state.next_due_ms
        assert due_of(dump_state(state.model_copy(update={"next_due_ms": None}))) is None


def test_the_index_takes_partitions_from_a_faust_store_instead_of_hashing() -> None:
    """Faust's stores know each key's partition (RocksDB: a database per
    partition; memory: the partition each recovered key came from); the
    index trusts them and hashes only keys they do not know."""
    from faust.stores.memory import Store as MemoryStore

    from processor.stream.state import PartitionIndex
    from processor.stream.store_items import partitioned_items

    class Table(dict[bytes, bytes]):
        data: Any

    route = Partitioner(PARTITIONS)
    recovered, live = b"opp-recovered", b"opp-live"
    elsewhere = (route(recovered.decode()) + 1) % PARTITIONS  # not where hashing puts it
    store = MemoryStore.__new__(MemoryStore)
    store.data = {recovered: b'{"next_due_ms":5}', live: b'{"next_due_ms":7}'}
    store._key_partition = {recovered: elsewhere}
    table = Table(store.data)
    table.data = store

    index = PartitionIndex(route)
    index.for_partition(0, lambda: partitioned_items(table))
    assert index.due[elsewhere][recovered] == 5
    assert index.due[route(live.decode())][live] == 7
    # A plain mapping (no store behind it): every key hashed.
    plain = PartitionIndex(route)
    plain.for_partition(0, lambda: partitioned_items({recovered: b"{}"}))
    assert recovered in plain.due[route(recovered.decode())]
