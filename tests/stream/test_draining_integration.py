"""The state agent's units on the real broker: a backlog of change batches
on ``hygiene.changes`` is handled several messages at a time, with the same
results as the replay, and a message nobody can decode in the middle of a
run is dead-lettered alone (on the native core, only the change in it that
cannot be read: the rest of its message is applied)."""

from __future__ import annotations

import orjson
import pytest

from processor.rules import RuleSet
from processor.simulate import simulate
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings
from processor.stream import messages
from processor.stream.routing import Partitioner
from schemas import OpportunityChange

from .conftest import NewStream, NewWorker
from .support import (
    PARTITIONS,
    Kafka,
    assert_same_as_replay,
    dead_letters,
    keyed,
    replay,
)
from .test_stream_integration import DAYS, START, drain

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_a_backlog_is_handled_in_units_with_the_replays_results(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker, native: bool
) -> None:
    sim = simulate(opportunities=60, days=DAYS, seed=505, fmt="mixed", start=START, rules=rules)
    inputs = keyed(sim)
    oracle = replay(rules, inputs)
    mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))
    partition_of = Partitioner(PARTITIONS)
    routed: dict[int, list[OpportunityChange]] = {p: [] for p in range(PARTITIONS)}
    for _, raw in inputs:
        for change in decode(raw, mappings).changes:
            routed[partition_of(change.opportunity_id)].append(change)
    # What ingest would have sent, cut small: many internal messages waiting
    # per partition when the worker starts.
    unreadable = orjson.dumps({"opportunity_id": 7})
    foreign = b'{"kind":"changes","changes":[' + unreadable + b"]}"
    backlog: list[tuple[int, bytes, bytes | None]] = []
    for partition, changes in routed.items():
        chunks = [changes[i:i + 15] for i in range(0, len(changes), 15)]
        assert len(chunks) >= 6
        for index, chunk in enumerate(chunks):
            backlog.append((partition, b"", messages.encode_changes(chunk)))
            if partition == 2 and index == 2:
                backlog.append((partition, b"", foreign))

    stream = new_stream(HYGIENE_NATIVE_CORE=str(native).lower())
    kafka.produce_to(stream.changes, backlog)
    worker = new_worker("worker", stream).start().wait_ready()
    drain(stream, kafka, worker)

    assert_same_as_replay(kafka, stream, oracle)
    [letter] = dead_letters(kafka.read(stream.dead_letter))
    assert letter.original_value() == (unreadable if native else foreign)
    assert letter.partition == 2

    handled = worker.metric("hygiene_state_unit_messages_sum")
    units = worker.metric("hygiene_state_unit_messages_count")
    assert handled == len(backlog)
    assert units < handled / 2, f"{handled} messages in {units} units: not taken together"
