"""Failures inside the worker, on the real broker: a write the broker refuses
is retried in place until it goes through (nothing lost, the partition's
commits never skip it), and an internal message nobody can handle is
dead-lettered while the stream goes on (``processor.stream.failures``)."""

from __future__ import annotations

import orjson
import pytest

from processor.replay.runner import ReplayResult
from processor.rules import RuleSet
from processor.simulate import Format, simulate
from processor.stream.failures import FALLBACK_KEPT_BYTES
from schemas import DeadLetter

from .conftest import NewStream, NewWorker
from .support import (
    Kafka,
    Stream,
    WorkerProcess,
    assert_same_as_replay,
    dead_letters,
    history_records,
    keyed,
    last_by_id,
    replay,
    wait_for,
)
from .test_stream_integration import DAYS, START, _generic, drain

pytestmark = pytest.mark.integration


def refusing(
    role: str, agent: str, fmt: Format, seed: int, rules: RuleSet, kafka: Kafka,
    new_stream: NewStream, new_worker: NewWorker,
) -> tuple[Stream, WorkerProcess, ReplayResult]:
    """A stream whose ``role`` topic refuses every record (a 200-byte
    ``max.message.bytes``: MessageSizeTooLargeError, which aiokafka does not
    retry by itself), fed simulated traffic until ``agent`` has retried
    twice; returned with the worker and the replay's verdict on the traffic."""
    messages = keyed(simulate(opportunities=25, days=DAYS, seed=seed, fmt=fmt, start=START,
                              rules=rules))
    stream = new_stream()
    kafka.set_topic_config(stream.names[role], {"max.message.bytes": "200"})
    worker = new_worker("worker", stream).start().wait_ready()
    kafka.produce(stream.input, messages)
    wait_for(lambda: worker.metric("hygiene_handling_retries_total", agent=agent,
                                   error="MessageSizeTooLargeError") >= 2,
             60, f"{agent} retrying the refused write", explain=worker.log_tail)
    assert worker.running, worker.log_tail()
    assert not stream.drained(kafka), "work whose writes were refused was committed"
    assert kafka.count(stream.names[role]) == 0
    return stream, worker, replay(rules, messages)


def test_a_write_the_broker_refuses_is_retried_until_it_goes_through_and_nothing_is_lost(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    stream, worker, oracle = refusing("alerts", "hygiene.state", "mixed", 303, rules, kafka,
                                      new_stream, new_worker)
    assert any(a.kind == "alert" for a in oracle.alerts)
    kafka.set_topic_config(stream.alerts, {})  # the operator fixes the topic
    drain(stream, kafka, worker)

    assert_same_as_replay(kafka, stream, oracle)
    assert kafka.count(stream.dead_letter) == 0
    assert "MessageSizeTooLargeError" in worker.log_text()


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_an_internal_message_nobody_can_handle_is_dead_lettered_and_the_stream_goes_on(
    kafka: Kafka, new_stream: NewStream, new_worker: NewWorker, native: bool
) -> None:
    stream = new_stream(HYGIENE_NATIVE_CORE=str(native).lower())
    worker = new_worker("worker", stream).start().wait_ready()
    # Not a change batch or a sweep tick: what an incompatible producer (or
    # an older release's format) could leave on the internal topic.
    unreadable = orjson.dumps({"opportunity_id": 7})
    foreign = b'{"kind":"changes","changes":[' + unreadable + b"]}"
    [where] = kafka.produce_to(stream.changes, [(1, b"opp-x", foreign)])
    kafka.produce(stream.input, [(b"opp-ok", orjson.dumps(_generic("opp-ok", "ev-ok")))])

    records = kafka.read_until(stream.dead_letter, lambda r: len(r) >= 1, 60,
                               "the foreign message dead-lettered", explain=worker.log_tail)
    [letter] = dead_letters(records)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "processing_error"
    if native:
        # The native core reads each change itself: the one it cannot read
        # is dead-lettered, the rest of its message (none here) applied.
        assert letter.original_value() == unreadable
        assert (letter.source, letter.partition) == ("hygiene.changes", 1)
        assert letter.error.startswith("not an OpportunityChange")
    else:
        assert letter.original_value() == foreign
        assert (letter.source, letter.partition, letter.offset) == (
            stream.changes, 1, where.offset)
        assert letter.error.startswith("hygiene.state: ValidationError")
    drain(stream, kafka, worker)  # committed past it: the partition is not stuck
    history = history_records(kafka.read(stream.history))
    assert [(h.opportunity_id, h.new_stage) for h in history] == [("opp-ok", "Prospecting")]
    assert worker.metric("hygiene_dead_letters_total", reason="processing_error") == 1


def test_ingest_retries_a_batch_the_broker_refuses_and_loses_nothing(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    stream, worker, oracle = refusing("changes", "ingest", "generic", 304, rules, kafka,
                                      new_stream, new_worker)
    assert kafka.committed(stream.ingest_group, stream.input) in ({}, dict.fromkeys(range(4), 0))
    kafka.set_topic_config(stream.changes, {})
    drain(stream, kafka, worker)
    history = history_records(kafka.read(stream.history))
    assert last_by_id(history) == last_by_id(oracle.history)
    inputs = sum(kafka.end_offsets(stream.input).values())
    assert worker.metric("hygiene_input_messages_total") == inputs


def test_an_oversized_input_is_dead_lettered_whole_on_a_stock_input_limit(
    kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    """The worker's default limit (1 MiB): what the input topic accepts
    beyond it lands in the dead-letter topic with all its bytes, which base64
    makes a third larger than any stock topic takes; the dead-letter topic
    is created with room for it."""
    stream = new_stream()
    kafka.set_topic_config(stream.input, {"max.message.bytes": str(4 * 1_048_576)})
    worker = new_worker("worker", stream).start().wait_ready()
    big = orjson.dumps(_generic("opp-big", "ev-big", next_step="x" * (3 * 1_048_576)))
    broken = b'{"event_id": "ev-broken", ' + b" " * 900_000  # malformed, just under the limit
    kafka.produce(stream.input, [(b"opp-big", big), (b"opp-broken", broken),
                                 (b"opp-ok", orjson.dumps(_generic("opp-ok", "ev-ok")))])

    records = kafka.read_until(stream.dead_letter, lambda r: len(r) >= 2, 60,
                               "two dead letters", explain=worker.log_tail)
    letters = {d.reason: d for d in dead_letters(records)}
    assert sorted(letters) == ["malformed_json", "oversized"]
    assert letters["oversized"].original_value() == big
    assert letters["malformed_json"].original_value() == broken
    assert not any(d.truncated for d in letters.values())
    assert letters["oversized"].original_size == len(big)
    drain(stream, kafka, worker)
    history = history_records(kafka.read(stream.history))
    assert [h.opportunity_id for h in history] == ["opp-ok"]


def test_a_dead_letter_topic_made_by_hand_at_1_mb_gets_a_truncated_letter_not_a_stall(
    kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    stream = new_stream()
    # As an operator's own tooling would make it: the broker's default limit.
    kafka.set_topic_config(stream.dead_letter, {"max.message.bytes": "1048588"})
    worker = new_worker("worker", stream).start().wait_ready()
    broken = b'{"event_id": "ev-broken", ' + b" " * 900_000  # base64: 1.2 MB
    kafka.produce(stream.input, [(b"opp-broken", broken),
                                 (b"opp-ok", orjson.dumps(_generic("opp-ok", "ev-ok")))])

    records = kafka.read_until(stream.dead_letter, lambda r: len(r) >= 1, 60,
                               "the dead letter, truncated", explain=worker.log_tail)
    [letter] = dead_letters(records)
    assert letter.reason == "malformed_json" and letter.truncated
    assert letter.original_size == len(broken)
    assert letter.original_value() == broken[:FALLBACK_KEPT_BYTES]
    drain(stream, kafka, worker)
    assert [h.opportunity_id for h in history_records(kafka.read(stream.history))] == ["opp-ok"]
    assert "dead-letter topic refused" in worker.log_text()
