"""The stream end to end on a real Kafka broker: real ``hygiene worker``
processes, each test with its own topics and consumer groups.

The offline replay (``processor.replay.runner.Replay``) is the oracle: it runs
the same decoding and the same engine on the same messages, so for whatever
the stream publishes per event (stage history, event-driven alerts) the two
must agree exactly. Sweeps are switched off (a one-hour interval) except in
the test about them.
"""

from __future__ import annotations

import base64
import itertools
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.rules import RuleSet
from processor.simulate import Format, simulate
from processor.stream.routing import Partitioner
from schemas import Alert, DeadLetter, Resolution

from .conftest import NewStream, NewWorker
from .support import (
    NOTICE_RULES,
    PARTITIONS,
    Kafka,
    Stream,
    alert_records,
    alerts_by_id,
    assert_same_as_replay,
    bulk_messages,
    comparable,
    dead_letters,
    diff,
    drain,
    final_states,
    history_records,
    keyed,
    last_by_id,
    open_rules,
    replay,
    resolved_ids,
    versions_by_id,
    wait_for,
)

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 60

Messages = list[tuple[bytes | None, bytes]]


def inputs(fmt: str, rules: RuleSet, opportunities: int, seed: int) -> Messages:
    if fmt == "bulk":
        sim = simulate(opportunities=opportunities, days=DAYS, seed=seed, fmt="generic",
                       start=START, rules=rules)
        return bulk_messages(sim, START, DAYS)
    vendor: Format = fmt  # type: ignore[assignment]
    sim = simulate(opportunities=opportunities, days=DAYS, seed=seed, fmt=vendor, start=START,
                   rules=rules)
    return keyed(sim)


# ---- 1. every input format in, the replay's outputs out ------------------------------


@pytest.mark.parametrize("fmt", ["salesforce", "hubspot", "generic", "bulk"])
def test_each_input_format_gives_the_replays_history_and_alerts(
    fmt: str, rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    messages = inputs(fmt, rules, opportunities=40, seed=101)
    oracle = replay(rules, messages)
    assert oracle.dead_letters == []
    assert len(oracle.history) >= 40
    assert any(a.kind == "alert" for a in oracle.alerts)

    stream = new_stream()
    worker = new_worker("worker", stream).start().wait_ready()
    kafka.produce(stream.input, messages)
    drain(stream, kafka, worker)

    history = history_records(kafka.read(stream.history))
    alerts = alert_records(kafka.read(stream.alerts))
    stream_history, oracle_history = last_by_id(history), last_by_id(oracle.history)
    assert stream_history == oracle_history, diff(stream_history, oracle_history)
    stream_alerts, oracle_alerts = alerts_by_id(alerts), alerts_by_id(oracle.alerts)
    assert set(stream_alerts) == set(oracle_alerts), diff(stream_alerts, oracle_alerts)
    assert stream_alerts == oracle_alerts, diff(stream_alerts, oracle_alerts)
    assert resolved_ids(alerts) == resolved_ids(oracle.alerts)
    assert kafka.count(stream.dead_letter) == 0


# ---- 2. bad input is dead-lettered, the stream goes on --------------------------------


def _generic(opportunity: str, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "source": "pipedrive",
        "event_id": event,
        "opportunity_id": opportunity,
        "occurred_at": "2026-03-05T10:00:00Z",
        "op": "upsert",
        "fields": {"name": "Acme expansion", "stage": "Prospecting", "pipeline": "New Business",
                   "amount": 25000.0, "currency": "USD", "owner_id": "u-1", **fields},
        "full": True,
    }


def test_bad_inputs_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    limit = 4096
    oversized = orjson.dumps(_generic("opp-big", "ev-big", next_step="x" * (2 * limit)))
    bad: dict[str, tuple[bytes, bytes]] = {
        "malformed_json": (b"opp-json", b'{"source": "pipedrive", "event_id": "ev-1", "opp'),
        "unknown_format": (b"opp-unknown", b'{"hello": "world", "deal": 42}'),
        "schema_violation": (b"opp-schema", orjson.dumps(
            {**_generic("opp-schema", "ev-schema"), "occurred_at": "yesterday"})),
        "oversized": (b"opp-big", oversized),
    }
    assert len(oversized) > limit
    valid = (b"opp-ok", orjson.dumps(_generic("opp-ok", "ev-ok")))
    # Understood, and about nothing the product tracks: counted, not dead-lettered.
    ignored = (b"18420399216", orjson.dumps([{
        "eventId": 1043218, "subscriptionId": 2281915, "portalId": 62515, "appId": 1160452,
        "occurredAt": 1714417500000, "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0, "objectId": 18420399216, "propertyName": "hs_analytics_source",
        "propertyValue": "ORGANIC_SEARCH", "changeSource": "ANALYTICS", "sourceId": "analytics"}]))

    stream = new_stream(HYGIENE_MAX_MESSAGE_BYTES=str(limit))
    worker = new_worker("worker", stream).start().wait_ready()
    sent = kafka.produce(stream.input, [*bad.values(), ignored, valid])

    history = kafka.read_until(
        stream.history,
        lambda records: any(h.opportunity_id == "opp-ok" for h in history_records(records)),
        60, "the valid event after the bad ones is processed", explain=worker.log_tail)
    assert [(h.opportunity_id, h.transition, h.new_stage) for h in history_records(history)] == [
        ("opp-ok", "created", "Prospecting")
    ]
    records = kafka.read_until(stream.dead_letter, lambda r: len(r) >= len(bad), 60,
                               "four dead letters", explain=worker.log_tail)
    letters: dict[str, DeadLetter] = {d.reason: d for d in dead_letters(records)}
    assert sorted(letters) == sorted(bad)
    for (reason, (key, value)), where in zip(bad.items(), sent, strict=False):
        letter = letters[reason]
        assert letter.original_value() == value, reason
        assert letter.original_key_b64 is not None
        assert base64.b64decode(letter.original_key_b64) == key, reason
        assert (letter.source, letter.partition, letter.offset) == (
            stream.input, where.partition, where.offset), reason
        assert letter.error, reason
    assert "4096" in letters["oversized"].error
    assert "occurred_at" in letters["schema_violation"].error
    drain(stream, kafka, worker)
    assert kafka.count(stream.dead_letter) == len(bad)
    assert worker.metric("hygiene_input_events_ignored_total") == 1
    assert worker.metric("hygiene_input_messages_total") == len(bad) + 2


# ---- 3. a stopped or killed worker recovers and loses nothing ---------------------------


@pytest.mark.parametrize(("how", "store"), [
    ("sigterm", "memory://"),
    ("sigkill", "memory://"),
    ("sigkill", "rocksdb://"),
])
def test_a_restarted_worker_recovers_its_table_and_loses_nothing(
    how: str, store: str, rules: RuleSet, kafka: Kafka, new_stream: NewStream,
    new_worker: NewWorker
) -> None:
    sim = simulate(opportunities=150, days=DAYS, seed=202, fmt="mixed", start=START, rules=rules)
    messages = keyed(sim)
    oracle = replay(rules, messages)
    half = len(messages) // 2

    stream = new_stream()
    # Faust's 60 s default session would hold the restart's group join until
    # the killed member times out; a short one keeps the test short.
    worker = new_worker("worker", stream, BROKER_SESSION_TIMEOUT="6",
                        BROKER_HEARTBEAT_INTERVAL="1", HYGIENE_STORE=store).start().wait_ready()
    kafka.produce(stream.input, messages[:half // 2])
    wait_for(lambda: kafka.count(stream.history) > 0, 60, "first stage-history records",
             interval=0.02, explain=worker.log_tail)
    # More input right before the stop: a worker fast enough to finish the
    # first part before its first output was seen still has this in flight.
    kafka.produce(stream.input, messages[half // 2:half])
    code = worker.kill() if how == "sigkill" else worker.stop()
    assert code == (-9 if how == "sigkill" else 0), worker.log_tail()
    interrupted = not stream.drained(kafka)
    if how == "sigkill":
        # Killed within moments of its first output, with a second of
        # commit interval: work in flight that a restart must redo.
        assert interrupted, "the worker was killed after it had finished"
    kafka.produce(stream.input, messages[half:])
    worker.start().wait_ready()
    drain(stream, kafka, worker)

    history = history_records(kafka.read(stream.history))
    alerts = alert_records(kafka.read(stream.alerts))
    # Nothing lost, nothing invented: the same record ids as the oracle's.
    assert {h.record_id for h in history} == {h.record_id for h in oracle.history}
    # Repeats (the work redone after the restart) are versions the oracle
    # published too, so a keyed upsert absorbs them; the last one agrees.
    oracle_versions = versions_by_id(oracle.history)
    for record_id, versions in versions_by_id(history).items():
        for version in versions:
            assert version in oracle_versions[record_id], record_id
    assert last_by_id(history) == last_by_id(oracle.history)
    stream_alerts, oracle_alerts = alerts_by_id(alerts), alerts_by_id(oracle.alerts)
    assert set(oracle_alerts) - set(stream_alerts) == set(), "alerts lost"
    assert stream_alerts == oracle_alerts, diff(stream_alerts, oracle_alerts)
    assert resolved_ids(alerts) == resolved_ids(oracle.alerts)
    # The table came back from the changelog: had the second half run on
    # empty states, the history above could not match; the stored states do too.
    stored = {k: comparable(s) for k, s in final_states(kafka.read(stream.changelog)).items()}
    wanted = {k: comparable(s) for k, s in oracle.states.items()}
    assert stored == wanted, diff(stored, wanted)
    print(f"{how}: interrupted mid-stream={interrupted}; "
          f"{len(history)} history records published for {len(oracle.history)} in the oracle")


# ---- 4. two workers share the work; one takes over the other's state and sweeps ----------


def _one_alert_per_episode(records: list[Alert | Resolution]) -> None:
    """An opportunity never has two alerts open for the same rule: a second
    alert id for (opportunity, rule) only after the first was resolved."""
    current: dict[tuple[str, str], str] = {}
    for record in records:
        pair = (record.opportunity_id, record.rule_id)
        if record.kind == "alert" and record.rule_id not in NOTICE_RULES:
            held = current.get(pair)
            assert held in (None, record.alert_id), f"{pair}: {held} and {record.alert_id} open"
            current[pair] = record.alert_id
        elif record.kind == "resolution" and current.get(pair) == record.alert_id:
            del current[pair]


def test_two_workers_split_the_partitions_and_one_takes_over_state_and_sweeps(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    # A window that ended long ago: a sweep at wall-clock time finds stale
    # deals and past close dates that no event raised.
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=150)
    sim = simulate(opportunities=80, days=DAYS, seed=303, fmt="generic", start=start, rules=rules)
    messages = keyed(sim)
    stream = new_stream()
    group, changes = stream.app_id, stream.changes

    a = new_worker("a", stream, HYGIENE_SWEEP_INTERVAL_SECONDS="3").start().wait_ready()
    alone = wait_for(lambda: _stable(kafka, group, changes, members=1), 60, "a owns everything",
                     explain=a.log_tail)
    (a_member,) = alone
    # B never sweeps by itself: whatever is swept in its partitions is A's doing.
    b = new_worker("b", stream).start().wait_ready()
    split = wait_for(lambda: _stable(kafka, group, changes, members=2), 60, "a and b split",
                     explain=lambda: a.log_tail() + b.log_tail())
    b_partitions = next(parts for member, parts in split.items() if member != a_member)
    assert split[a_member] and b_partitions
    assert split[a_member] | b_partitions == set(range(PARTITIONS))

    kafka.produce(stream.input, messages)
    drain(stream, kafka, a, b)
    partition_of = Partitioner(PARTITIONS)
    b_opportunities = {opp for opp in set(sim.keys) if partition_of(opp) in b_partitions}
    history = history_records(kafka.read(stream.history))
    assert {h.opportunity_id for h in history} == set(sim.keys)
    assert b_opportunities and set(sim.keys) - b_opportunities
    before = alert_records(kafka.read(stream.alerts))
    assert not [x for x in before if x.opportunity_id in b_opportunities
                and x.kind == "alert" and x.source_event_id is None], "nobody swept B's partitions"

    stopped = datetime.now(UTC)
    assert b.stop() == 0
    wait_for(lambda: _stable(kafka, group, changes, members=1) == {a_member: set(
        range(PARTITIONS))}, 60, "a owns every partition again", explain=a.log_tail)

    # What a sweep now finds, from the oracle's states swept at the same time.
    runner_result = replay(rules, messages)
    expected_states = dict(runner_result.states)
    now_ms = to_ms(datetime.now(UTC))
    engine = Engine(rules)
    for state in expected_states.values():
        engine.sweep(state, now_ms)
    expected = {opp: set(s.open_alerts) for opp, s in expected_states.items() if s.open_alerts}
    assert {opp for opp in expected if opp in b_opportunities}

    records = kafka.read_until(
        stream.alerts, lambda r: open_rules(alert_records(r)) == expected, 60,
        "a's sweeps open the time-driven alerts of every opportunity, b's included",
        explain=lambda: f"{diff(open_rules(alert_records(kafka.read(stream.alerts))), expected)}"
                        f"\n{a.log_tail()}\n{a.stacks()}")
    alerts = alert_records(records)
    swept_b = [x for x in alerts if x.kind == "alert" and x.source_event_id is None
               and x.opportunity_id in b_opportunities]
    assert swept_b
    assert all(x.opened_at >= stopped for x in swept_b)
    _one_alert_per_episode(alerts)


def _stable(kafka: Kafka, group: str, topic: str, members: int) -> dict[str, set[int]]:
    """The group's assignment of ``topic`` once it is stable with ``members``
    members that each own some partitions ({} until then)."""
    found = kafka.assignment(group, topic)
    if len(found) != members or not all(found.values()):
        return {}
    return found


def test_a_worker_joining_mid_traffic_crashes_nobody_and_loses_nothing(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    """Scaling out under load: both consumer groups (the ingest loop's and the
    state agent's) rebalance while batches are in flight."""
    sim = simulate(opportunities=120, days=DAYS, seed=505, fmt="mixed", start=START, rules=rules)
    chunks = [keyed(sim)[i:i + 40] for i in range(0, len(sim.events), 40)]
    stream = new_stream()
    a = new_worker("a", stream).start().wait_ready()
    b = new_worker("b", stream).start()

    def both_in() -> bool:
        return bool(_stable(kafka, stream.ingest_group, stream.input, members=2)
                    and _stable(kafka, stream.app_id, stream.changes, members=2))

    # Traffic flows, from a thread of its own so that the ingest loops are
    # busy when their group rebalances, until every chunk went out and B is in
    # both groups (old chunks go again meanwhile: redeliveries, which the
    # oracle sees too).
    sent: Messages = []
    stop = threading.Event()

    def traffic() -> None:
        with Kafka(kafka.bootstrap) as producer:
            for number in itertools.count():
                if stop.is_set():
                    return
                chunk = chunks[number % len(chunks)]
                producer.produce(stream.input, chunk)
                sent.extend(chunk)

    thread = threading.Thread(target=traffic, name="traffic")
    thread.start()
    try:
        wait_for(both_in, 60, "b joined both groups under load",
                 explain=lambda: a.log_tail() + b.log_tail())
        wait_for(lambda: len(sent) >= len(sim.events), 60, "every chunk sent")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    b.wait_ready()
    drain(stream, kafka, a, b)
    assert a.running and b.running, a.log_tail() + b.log_tail()

    oracle = replay(rules, sent)
    history, _ = assert_same_as_replay(kafka, stream, oracle)
    assert {h.record_id for h in history} == {h.record_id for h in oracle.history}
    stored = {k: comparable(s) for k, s in final_states(kafka.read(stream.changelog)).items()}
    wanted = {k: comparable(s) for k, s in oracle.states.items()}
    assert stored == wanted, diff(stored, wanted)


# ---- 5. duplicated and out-of-order events give the in-order result ------------------------


def test_duplicated_and_shuffled_events_give_the_same_result_as_in_order(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    sim = simulate(opportunities=12, days=DAYS, seed=404, fmt="salesforce", start=START,
                   rules=rules)
    messages = keyed(sim)
    oracle = replay(rules, messages)
    transitions = Counter(h.opportunity_id for h in oracle.history)
    opportunity, count = transitions.most_common(1)[0]
    assert count >= 4
    in_order = [(k, v) for k, v in messages if k == opportunity.encode()]
    rng = random.Random(7)
    shuffled = in_order + rng.sample(in_order, len(in_order) // 2)
    rng.shuffle(shuffled)
    assert shuffled[: len(in_order)] != in_order

    first, second = new_stream(), new_stream()
    workers = [new_worker("in-order", first).start(), new_worker("shuffled", second).start()]
    for worker in workers:
        worker.wait_ready()
    kafka.produce(first.input, in_order)
    kafka.produce(second.input, shuffled)
    drain(first, kafka, workers[0])
    drain(second, kafka, workers[1])

    def final_history(stream: Stream) -> dict[str, dict[str, Any]]:
        latest = last_by_id(history_records(kafka.read(stream.history)))
        return {rid: record for rid, record in latest.items() if not record["retracted"]}

    expected = final_history(first)
    assert expected == {rid: h for rid, h in last_by_id(oracle.history).items()
                        if not h["retracted"] and h["opportunity_id"] == opportunity}
    assert final_history(second) == expected, diff(final_history(second), expected)

    def open_now(stream: Stream) -> tuple[set[str], set[str]]:
        states = final_states(kafka.read(stream.changelog))
        published = open_rules(alert_records(kafka.read(stream.alerts)))
        return set(states[opportunity].open_alerts), published.get(opportunity, set())

    table_rules, published_rules = open_now(first)
    assert table_rules == published_rules == set(oracle.states[opportunity].open_alerts)
    assert open_now(second) == (table_rules, published_rules)
