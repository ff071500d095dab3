"""The state agent's work without Kafka: ``StateProcessor`` over a dict as
its table and a publish function that records what it is given."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from processor.core.engine import Engine
from processor.core.outcome import Outcome
from processor.rules import RuleSet, default_rules
from processor.stream import messages
from processor.stream.routing import Partitioner
from processor.stream.state import StateProcessor, Topics, load_state
from schemas import DeadLetter, OpportunityChange, OpportunityState, StageHistoryRecord
from tests.builders import HEALTHY_DISCOVERY, change, ms

TOPICS = Topics("t.alerts", "t.stage-history", "t.commands", "t.dead-letter")
PARTITIONS = 4
Out = list[tuple[str, bytes | None, bytes]]

class Table(dict[bytes, bytes]):
    """A dict that notes every read and write in a shared log."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.log = log

    def get(self, key: bytes, default: Any = None) -> Any:
        self.log.append(("read", key))
        return super().get(key, default)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.log.append(("write", key))
        super().__setitem__(key, value)


class Recorder:
    """A publish function: records each call in the shared log, or raises."""

    def __init__(self, log: list[tuple[str, Any]], fail: bool = False) -> None:
        self.log = log
        self.fail = fail
        self.published: Out = []

    async def __call__(self, records: Out) -> None:
        self.log.append(("publish", len(records)))
        if self.fail:
            raise ConnectionError("broker unavailable")
        self.published.extend(records)

    def on(self, topic: str) -> list[tuple[bytes | None, bytes]]:
        return [(key, value) for t, key, value in self.published if t == topic]


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return default_rules()


def batch(*changes: OpportunityChange) -> messages.ChangeBatch:
    """Through the wire format, as the agent receives it."""
    decoded = messages.decode(messages.encode_changes(list(changes)))
    assert isinstance(decoded, messages.ChangeBatch)
    return decoded


def run(coro: Any) -> None:
    asyncio.run(coro)


def ids_by_partition(count: int) -> Iterator[tuple[int, str]]:
    partition_of = Partitioner(PARTITIONS)
    for n in range(count):
        opp = f"006OPP{n:03d}"
        yield partition_of(opp), opp


@pytest.mark.parametrize("engine", ["python", "native"])
def test_outputs_are_published_and_acknowledged_before_the_table_is_written(
    rules: RuleSet, engine: str,
) -> None:
    from processor.stream.native_state import NativeStateProcessor

    log: list[tuple[str, Any]] = []
    table, publish = Table(log), Recorder(log)
    processor: StateProcessor | NativeStateProcessor = (
        StateProcessor(Engine(rules), TOPICS, PARTITIONS) if engine == "python"
        else NativeStateProcessor(rules, TOPICS, PARTITIONS))

    run(processor.handle_changes(batch(
        change(0, opp="006A", **HEALTHY_DISCOVERY),
        change(0, opp="006B", **HEALTHY_DISCOVERY),
        change(3, opp="006A", stage="Solution"),
    ), 0, table, publish))

    steps = [step for step, _ in log if step != "read"]
    assert steps == ["publish", "write", "write"]
    assert set(table) == {b"006A", b"006B"}
    history = [StageHistoryRecord.model_validate_json(v)
               for _, v in publish.on(TOPICS.stage_history)]
    assert [(h.opportunity_id, h.transition) for h in history] == [
        ("006A", "created"), ("006A", "stage_changed"), ("006B", "created")]


def test_a_failed_publish_leaves_the_table_as_it_was(rules: RuleSet) -> None:
    log: list[tuple[str, Any]] = []
    table = Table(log)
    processor = StateProcessor(Engine(rules), TOPICS, PARTITIONS)
    run(processor.handle_changes(batch(change(0, opp="006A", **HEALTHY_DISCOVERY)), 0, table,
                                 Recorder(log)))
    before = dict(table)

    failing = Recorder(log, fail=True)
    with pytest.raises(ConnectionError):
        run(processor.handle_changes(batch(
            change(2, opp="006A", stage="Solution"),
            change(2, opp="006NEW", **HEALTHY_DISCOVERY),
        ), 0, table, failing))

    assert dict(table) == before
    step, attempted = log[-1]
    assert step == "publish" and attempted >= 2  # at least the two history records
    assert failing.published == []


def test_a_redelivered_batch_stores_its_states_again(rules: RuleSet) -> None:
    """A worker killed between its RocksDB write and the changelog send comes
    back with a local state ahead of the changelog; the batch is delivered
    again and changes nothing, and writing the state anyway is what puts it
    back in the changelog."""
    log: list[tuple[str, Any]] = []
    table = Table(log)
    processor = StateProcessor(Engine(rules), TOPICS, PARTITIONS)
    again = batch(change(0, opp="006A", **HEALTHY_DISCOVERY), change(1, opp="006B",
                                                                      **HEALTHY_DISCOVERY))
    run(processor.handle_changes(again, 0, table, Recorder(log)))
    stored = dict(table)
    log.clear()
    publish = Recorder(log)

    run(processor.handle_changes(again, 0, table, publish))

    assert publish.published == []  # nothing new to say
    assert [key for step, key in log if step == "write"] == [b"006A", b"006B"]
    assert dict(table) == stored


def test_a_sweep_reads_and_writes_only_the_keys_of_its_partition(rules: RuleSet) -> None:
    log: list[tuple[str, Any]] = []
    table = Table(log)
    processor = StateProcessor(Engine(rules), TOPICS, PARTITIONS)
    owned: dict[int, set[bytes]] = {p: set() for p in range(PARTITIONS)}
    for partition, opp in ids_by_partition(24):
        run(processor.handle_changes(batch(change(0, opp=opp, **HEALTHY_DISCOVERY)), partition,
                                     table, Recorder(log)))
        owned[partition].add(opp.encode())
    assert all(owned.values())

    for partition in range(PARTITIONS):
        before = dict(table)
        log.clear()
        publish = Recorder(log)
        # Long after the close date: every open deal is stale with its close date past.
        run(processor.handle_sweep(messages.SweepTick(at_ms=ms(200)), partition, table, publish))
        # Reads may come from the processor's cache; what it reads from the table
        # and what it writes must stay inside the partition.
        written = {key for step, key in log if step == "write"}
        read = {key for step, key in log if step == "read"}
        assert written == owned[partition] and read <= owned[partition]
        assert {key for key, _ in publish.on(TOPICS.alerts)} == owned[partition]
        changed = {key for key, value in table.items() if before[key] != value}
        assert changed == owned[partition]

    # Keys written after the index was built are swept too.
    _, newcomer = next((p, o) for p, o in ids_by_partition(40) if p == 1 and
                       o.encode() not in owned[1])
    run(processor.handle_changes(batch(change(201, opp=newcomer, **HEALTHY_DISCOVERY)), 1, table,
                                 Recorder(log)))
    log.clear()
    run(processor.handle_sweep(messages.SweepTick(at_ms=ms(400)), 1, table, Recorder(log)))
    touched = {key for step, key in log if step in ("read", "write")}
    assert newcomer.encode() in touched
    assert touched <= owned[1] | {newcomer.encode()}


def test_a_sweep_after_a_revocation_rebuilds_its_index_from_the_table(rules: RuleSet) -> None:
    log: list[tuple[str, Any]] = []
    table = Table(log)
    processor = StateProcessor(Engine(rules), TOPICS, PARTITIONS)
    for partition, opp in ids_by_partition(12):
        run(processor.handle_changes(batch(change(0, opp=opp, **HEALTHY_DISCOVERY)), partition,
                                     table, Recorder(log)))
    run(processor.handle_sweep(messages.SweepTick(at_ms=ms(1)), 2, table, Recorder(log)))
    processor.index.forget()  # what the worker does when partitions are revoked
    # A state that arrives by changelog recovery, written by another worker.
    recovered = next(o for p, o in ids_by_partition(60) if p == 2 and o.encode() not in table)
    elsewhere: dict[bytes, bytes] = {}
    other = StateProcessor(Engine(rules), TOPICS, PARTITIONS)
    run(other.handle_changes(batch(change(0, opp=recovered, **HEALTHY_DISCOVERY)), 2, elsewhere,
                             Recorder([])))
    dict.__setitem__(table, recovered.encode(), elsewhere[recovered.encode()])
    log.clear()
    run(processor.handle_sweep(messages.SweepTick(at_ms=ms(200)), 2, table, Recorder(log)))
    assert ("read", recovered.encode()) in log


class ExplodingEngine(Engine):
    """The real engine, except that it fails on one event, like a bug would."""

    __slots__ = ()

    def apply(
        self, state: OpportunityState | None, change: OpportunityChange
    ) -> tuple[OpportunityState, Outcome]:
        if change.event_id == "ev-boom":
            raise ValueError("cannot apply this change")
        return super().apply(state, change)


def test_a_processing_error_is_dead_lettered_and_the_rest_of_the_batch_is_applied(
    rules: RuleSet,
) -> None:
    log: list[tuple[str, Any]] = []
    table, publish = Table(log), Recorder(log)
    processor = StateProcessor(ExplodingEngine(rules), TOPICS, PARTITIONS)
    boom = change(1, opp="006B", event_id="ev-boom", stage="Solution")

    run(processor.handle_changes(batch(
        change(0, opp="006A", **HEALTHY_DISCOVERY),
        change(0, opp="006B", **HEALTHY_DISCOVERY),
        boom,
        change(2, opp="006B", amount=55000.0),
        change(0, opp="006C", **HEALTHY_DISCOVERY),
    ), 3, table, publish))

    letters = [(key, DeadLetter.model_validate_json(value))
               for key, value in publish.on(TOPICS.dead_letter)]
    assert len(letters) == 1
    key, letter = letters[0]
    assert key == b"006B"
    assert (letter.reason, letter.partition) == ("processing_error", 3)
    assert "ValueError: cannot apply this change" in letter.error
    assert OpportunityChange.model_validate_json(letter.original_value()) == boom
    assert set(table) == {b"006A", b"006B", b"006C"}
    state_b = load_state(table[b"006B"])
    assert state_b is not None
    assert state_b.fields["amount"] == 55000.0  # the change after the failure was applied
    assert state_b.fields["stage"] == "Discovery"  # the failed change was not
    history = {StageHistoryRecord.model_validate_json(v).opportunity_id
               for _, v in publish.on(TOPICS.stage_history)}
    assert history == {"006A", "006B", "006C"}
    assert orjson.loads(table[b"006C"])["opportunity_id"] == "006C"
