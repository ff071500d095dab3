"""The state agent on the native core (``NativeStateProcessor``) against the
Python ``StateProcessor``, without Kafka: the same simulated traffic, in the
same units, over dicts as tables, must publish the same triples in the same
order, store the same bytes and send the same regroup messages; and the
native processor's own promises (publish before write, a failure leaves
nothing behind, rejected changes dead-lettered, bounded memory)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from processor.alerts.owner_queue import OwnerQueueRegrouping
from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.forecast.entry import RollupRegrouping
from processor.forecast.fiscal import FiscalCalendar
from processor.rules import RuleSet
from processor.stream import messages
from processor.stream.native_state import NativeStateProcessor, whole_state
from processor.stream.regroup import Regrouping
from processor.stream.routing import Partitioner
from processor.stream.state import StateProcessor, Topics
from schemas import DeadLetter, OpportunityChange
from schemas.state import state_from_json
from tests.builders import HEALTHY_DISCOVERY, change, ms
from tests.native.test_core_parity import RULES, traffic
from tests.stream.test_state_processor import Recorder, Table

pytest.importorskip("processor.hygiene_core")

TOPICS = Topics("t.alerts", "t.stage-history", "t.commands", "t.dead-letter")
PARTITIONS = 3
Out = list[tuple[str, bytes | None, bytes]]
Unit = messages.SweepTick | list[list[OpportunityChange]]
"""A sweep, or the change batches (messages) of one partition handled together."""


def regroupings(rules: RuleSet) -> list[Regrouping]:
    return [OwnerQueueRegrouping(Engine(rules), "t.owner-queues"),
            RollupRegrouping(rules, FiscalCalendar(2), "t.rollup-members")]


def processors(
    rules: RuleSet, regrouped: bool = True
) -> tuple[StateProcessor, NativeStateProcessor]:
    python = StateProcessor(Engine(rules), TOPICS, PARTITIONS,
                            regroupings=regroupings(rules) if regrouped else ())
    native = NativeStateProcessor(rules, TOPICS, PARTITIONS,
                                  regroupings=regroupings(rules) if regrouped else ())
    return python, native


def schedule(changes: Sequence[OpportunityChange], batch: int, per_unit: int,
             sweep_days: int | None) -> list[tuple[int, Unit]]:
    """(partition, unit) in order: the changes split by partition into
    batches of ``batch``, ``per_unit`` batches a unit, and every
    ``sweep_days`` of event time a sweep of every partition."""
    partition_of = Partitioner(PARTITIONS)
    pending: dict[int, list[OpportunityChange]] = {p: [] for p in range(PARTITIONS)}
    out: list[tuple[int, Unit]] = []

    def flush() -> None:
        for partition, queued in pending.items():
            batches = [queued[i:i + batch] for i in range(0, len(queued), batch)]
            for i in range(0, len(batches), per_unit):
                out.append((partition, batches[i:i + per_unit]))
            queued.clear()

    next_sweep = None
    for item in changes:
        at = to_ms(item.occurred_at)
        if sweep_days is not None:
            if next_sweep is None:
                next_sweep = at + sweep_days * 86_400_000
            if at >= next_sweep:
                flush()
                out.extend((p, messages.SweepTick(at_ms=next_sweep)) for p in range(PARTITIONS))
                next_sweep += sweep_days * 86_400_000
        pending[partition_of(item.opportunity_id)].append(item)
        if sum(len(q) for q in pending.values()) >= batch * per_unit * PARTITIONS:
            flush()
    flush()
    return out


async def handle(processor: StateProcessor | NativeStateProcessor, partition: int, unit: Unit,
                 table: dict[bytes, bytes], publish: Recorder, offset: int) -> None:
    if isinstance(unit, messages.SweepTick):
        await processor.handle_sweep(unit, partition, table, publish, offset=offset)
        return
    raw = [messages.encode_changes(batch) for batch in unit]
    # Each processor's own reading of the messages, merged as the agent does.
    decoded = [processor.decode(r) for r in raw]
    merged: messages.ChangeBatch | messages.RawChanges
    if isinstance(processor, NativeStateProcessor):
        merged = messages.RawChanges([m for d in decoded
                                      if isinstance(d, messages.RawChanges) for m in d.messages])
    else:
        merged = messages.ChangeBatch(changes=[c for d in decoded
                                               if isinstance(d, messages.ChangeBatch)
                                               for c in d.changes])
    await processor.handle_changes(merged, partition, table, publish, offset=offset)


def compare(rules: RuleSet, units: list[tuple[int, Unit]], *,
            native: NativeStateProcessor | None = None, regrouped: bool = True,
            exact: bool = True) -> Out:
    """``exact``: the stored bytes too, not only their values (a state read
    back from the table lists its field stamps grouped, so once one was
    evicted and reloaded its later bytes order them so, in Python too)."""
    python, made = processors(rules, regrouped)
    native = native or made
    tables: tuple[dict[bytes, bytes], dict[bytes, bytes]] = ({}, {})

    async def scenario() -> Out:
        everything: Out = []
        for offset, (partition, unit) in enumerate(units):
            sent = (Recorder([]), Recorder([]))
            for processor, table, publish in zip((python, native), tables, sent, strict=True):
                await handle(processor, partition, unit, table, publish, offset)
            assert sent[1].published == sent[0].published, f"unit {offset} ({partition})"
            everything.extend(sent[0].published)
        return everything

    published = asyncio.run(scenario())
    assert list(tables[1]) == list(tables[0])  # written in the same order
    if exact:
        assert tables[1] == tables[0]
    else:
        assert same_states(tables[1], tables[0])
    return published


def same_states(left: dict[bytes, bytes], right: dict[bytes, bytes]) -> bool:
    """Equal stored values (field stamps in any order)."""
    return {k: vars(state_from_json(v)) for k, v in left.items()} == {
        k: vars(state_from_json(v)) for k, v in right.items()}


def topics_of(published: Out) -> dict[str, int]:
    counts: dict[str, int] = {}
    for topic, _, _ in published:
        counts[topic] = counts.get(topic, 0) + 1
    return counts


@pytest.mark.parametrize(("seed", "variant", "sweep_days"), [
    (1, "default", None), (2, "default", 5), (3, "new_york", 3), (4, "managers", 7),
])
def test_the_same_traffic_publishes_and_stores_the_same_as_the_python_processor(
    seed: int, variant: str, sweep_days: int | None,
) -> None:
    rules = RULES[variant]
    changes = traffic(rules, seed, "mixed", 150)
    published = compare(rules, schedule(changes, 40, 3, sweep_days))
    counts = topics_of(published)
    # The comparison saw every kind of output, regroup messages included.
    assert counts[TOPICS.alerts] and counts[TOPICS.stage_history]
    assert bool(counts.get(TOPICS.commands)) == (sweep_days is not None)  # close-outs: sweeps
    assert counts["t.owner-queues"] and counts["t.rollup-members"]
    assert TOPICS.dead_letter not in counts


def test_redelivered_units_change_nothing() -> None:
    """Units handled twice (a crash before the ack)."""
    rules = RULES["default"]
    units = schedule(traffic(rules, 5, "mixed", 120), 30, 2, 4)
    compare(rules, [u for unit in units for u in (unit, unit)])


def test_a_bounded_core_reloads_from_the_table() -> None:
    """A core cleared every few units (the memory bound): states come back
    from the table, memberships from the loaded light form."""
    rules = RULES["default"]
    units = schedule(traffic(rules, 5, "mixed", 120), 30, 2, 4)
    _, native = processors(rules)
    native.CACHE_LIMIT = 25
    compare(rules, [u for unit in units for u in (unit, unit)], native=native, exact=False)
    assert len(native.core) <= 25 + 30 * 2


def test_a_python_table_carries_on_natively() -> None:
    """A worker switching engines: the native processor reads the states the
    Python one stored (and the reverse), and carries on as Python would."""
    rules = RULES["new_york"]
    changes = traffic(rules, 6, "mixed", 120)
    units = schedule(changes, 30, 2, 6)
    half = len(units) // 2
    python, native = processors(rules)
    reference, _ = processors(rules)
    mixed_table: dict[bytes, bytes] = {}
    python_table: dict[bytes, bytes] = {}

    async def scenario() -> None:
        for offset, (partition, unit) in enumerate(units):
            first = python if offset < half else native
            sent = (Recorder([]), Recorder([]))
            await handle(first, partition, unit, mixed_table, sent[0], offset)
            await handle(reference, partition, unit, python_table, sent[1], offset)
            assert sent[0].published == sent[1].published, f"unit {offset}"

    asyncio.run(scenario())
    assert same_states(mixed_table, python_table)


# ---- the native processor's own promises ----------------------------------------


def run(coro: Any) -> None:
    asyncio.run(coro)


def batch(*changes: OpportunityChange) -> messages.RawChanges:
    return messages.RawChanges([messages.encode_changes(list(changes))])


def test_packed_messages_are_applied_as_the_plain_ones() -> None:
    from processor.hygiene_decode import pack

    units = schedule(traffic(RULES["default"], seed=6, fmt="mixed", opportunities=60),
                     batch=40, per_unit=2, sweep_days=None)
    outputs = []
    for packed in (False, True):
        _, native = processors(RULES["default"])
        table: dict[bytes, bytes] = {}
        sent = Recorder([])

        async def scenario(native: NativeStateProcessor = native, table: dict[bytes, bytes] = table,
                           sent: Recorder = sent, packed: bool = packed) -> None:
            for offset, (partition, unit) in enumerate(units):
                assert not isinstance(unit, messages.SweepTick)
                raw = [messages.encode_changes(b) for b in unit]
                if packed:
                    raw = [pack(r) for r in raw]
                merged = messages.RawChanges(
                    [m for r in raw for m in native.decode(r).messages])  # type: ignore[union-attr]
                await native.handle_changes(merged, partition, table, sent, offset=offset)

        asyncio.run(scenario())
        outputs.append((sent.published, table))
    assert outputs[0] == outputs[1]
    assert outputs[0][0]


def test_a_failed_publish_leaves_the_table_and_the_core_as_they_were() -> None:
    log: list[tuple[str, Any]] = []
    table = Table(log)
    _, native = processors(RULES["default"])
    first = batch(change(0, opp="006A", **HEALTHY_DISCOVERY))
    run(native.handle_changes(first, 0, table, Recorder(log)))
    before = dict(table)
    failing = Recorder(log, fail=True)
    step = batch(change(2, opp="006A", stage="Solution"),
                 change(2, opp="006NEW", **HEALTHY_DISCOVERY))
    with pytest.raises(ConnectionError):
        run(native.handle_changes(step, 0, table, failing))
    assert dict(table) == before
    assert "006A" not in native.core and "006NEW" not in native.core
    assert b"006A" not in native.memberships

    # The retry says everything again, as the first attempt would have.
    again = Recorder(log)
    run(native.handle_changes(step, 0, table, again))
    python, _ = processors(RULES["default"])
    reference: dict[bytes, bytes] = {}
    expected = Recorder([])
    run(python.handle_changes(messages.as_change_batch(first), 0, reference, Recorder([])))
    run(python.handle_changes(messages.as_change_batch(step), 0, reference, expected))
    assert again.published == expected.published
    assert same_states(dict(table), reference)  # 006A was read back from the table


def test_an_unreadable_change_is_dead_lettered_and_the_rest_applied() -> None:
    log: list[tuple[str, Any]] = []
    table, publish = Table(log), Recorder(log)
    _, native = processors(RULES["default"], regrouped=False)
    good = [orjson.dumps(c.__dict__) for c in (
        change(0, opp="006A", **HEALTHY_DISCOVERY), change(0, opp="006B", **HEALTHY_DISCOVERY))]
    naive = orjson.loads(good[1])
    naive.update(event_id="ev-naive", occurred_at="2026-01-02T00:00:00")  # no zone
    bad = [orjson.dumps(naive), b'{"no":"change"}']
    raw = messages.encode_change_bytes([good[0], bad[0], good[1], bad[1]])
    run(native.handle_changes(messages.RawChanges([raw]), 2, table, publish))

    letters = [(key, DeadLetter.model_validate_json(v)) for key, v in
               publish.on(TOPICS.dead_letter)]
    assert [key for key, _ in letters] == [b"006B", None]
    assert [letter.original_value() for _, letter in letters] == bad
    assert all(letter.reason == "processing_error" and letter.partition == 2
               for _, letter in letters)
    assert set(table) == {b"006A", b"006B"}


def test_a_message_that_is_not_a_change_batch_fails_the_unit_and_touches_nothing() -> None:
    _, native = processors(RULES["default"], regrouped=False)
    table: dict[bytes, bytes] = {}
    good = messages.encode_changes([change(0, opp="006A", **HEALTHY_DISCOVERY)])
    with pytest.raises(ValueError, match="message 1"):
        run(native.handle_changes(messages.RawChanges([good, b'{"kind":"changes","chan']), 0,
                                  table, Recorder([])))
    assert table == {} and len(native.core) == 0


def test_a_sweep_touches_only_due_keys_of_its_partition_and_loads_what_the_core_lacks() -> None:
    log: list[tuple[str, Any]] = []
    table = Table(log)
    _, native = processors(RULES["default"], regrouped=False)
    partition_of = Partitioner(PARTITIONS)
    opps = [f"006OPP{n:03d}" for n in range(18)]
    for opp in opps:
        run(native.handle_changes(batch(change(0, opp=opp, **HEALTHY_DISCOVERY)),
                                  partition_of(opp), table, Recorder(log)))
    native.forget()  # a revocation: the core starts empty, the index is rebuilt
    assert len(native.core) == 0
    log.clear()
    publish = Recorder(log)
    run(native.handle_sweep(messages.SweepTick(at_ms=ms(200)), 1, table, publish))
    mine = {o.encode() for o in opps if partition_of(o) == 1}
    assert mine
    assert {key for step, key in log if step == "write"} == mine
    assert {key for step, key in log if step == "read"} == mine
    assert {key for key, _ in publish.on(TOPICS.alerts)} == mine
    # Nothing is due again before the next due time: a sweep now touches nothing.
    log.clear()
    run(native.handle_sweep(messages.SweepTick(at_ms=ms(200)), 1, table, Recorder(log)))
    assert [step for step, _ in log if step == "write"] == []


def test_the_whole_state_is_read_as_validation_reads_it() -> None:
    """``whole_state`` (renders without validation) against ``state_from_json``
    on every state of simulated traffic."""
    rules = RULES["new_york"]
    table: dict[bytes, bytes] = {}
    _, native = processors(rules, regrouped=False)
    for offset, (partition, unit) in enumerate(schedule(traffic(rules, 12, "mixed", 80),
                                                        40, 1, 5)):
        asyncio.run(handle(native, partition, unit, table, Recorder([]), offset))
    assert any(orjson.loads(raw).get("timeline") for raw in table.values())
    for raw in table.values():
        assert vars(whole_state(raw)) == vars(state_from_json(raw))
