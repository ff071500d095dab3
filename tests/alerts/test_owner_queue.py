"""Owner queues without Kafka: the state processor's entry updates, the owner
side's table, the current queue and the digest runs, checked against the
pure builder over the states themselves."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from datetime import UTC, date, time
from typing import Any

import orjson
import pytest

from processor.alerts.digest_schedule import WeeklySchedule
from processor.alerts.owner_queue import OwnerQueueRegrouping, OwnerQueues
from processor.alerts.queue import build_digest
from processor.core.engine import Engine
from processor.rules import RuleSet, default_rules
from processor.stream import messages, regroup
from processor.stream.routing import Partitioner
from processor.stream.state import StateProcessor, Topics, load_state
from schemas import Digest, OpportunityChange
from tests.builders import HEALTHY_DISCOVERY, change, ms

TOPICS = Topics("t.alerts", "t.stage-history", "t.commands", "t.dead-letter")
QUEUES = "t.owner-queues"
DIGESTS = "t.digests"
PARTITIONS = 4
MONDAY_8 = WeeklySchedule(0, time(8, 0), UTC)
Out = list[tuple[str, bytes | None, bytes]]


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return default_rules()


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: Out = []

    async def __call__(self, records: Out) -> None:
        if self.fail:
            raise ConnectionError("broker unavailable")
        self.published.extend(records)

    def on(self, topic: str) -> list[tuple[bytes | None, bytes]]:
        return [(key, value) for t, key, value in self.published if t == topic]


class StateSide:
    """The state agent over its own table, one partition per opportunity as
    the stream routes them, each handled message at the next offset."""

    def __init__(self, rules: RuleSet) -> None:
        engine = Engine(rules)
        self.engine = engine
        self.processor = StateProcessor(engine, TOPICS, PARTITIONS,
                                        regroupings=[OwnerQueueRegrouping(engine, QUEUES)])
        self.partition_of = Partitioner(PARTITIONS)
        self.table: dict[bytes, bytes] = {}
        self.offsets = [0] * PARTITIONS

    def send(self, *changes: OpportunityChange, publish: Recorder | None = None) -> Recorder:
        publish = publish or Recorder()
        by_partition: dict[int, list[OpportunityChange]] = {}
        for c in changes:
            by_partition.setdefault(self.partition_of(c.opportunity_id), []).append(c)
        for partition, batch in by_partition.items():
            message = messages.decode(messages.encode_changes(batch))
            assert isinstance(message, messages.ChangeBatch)
            self.offsets[partition] += 1
            asyncio.run(self.processor.handle_changes(
                message, partition, self.table, publish, offset=self.offsets[partition]))
        return publish

    def sweep(self, at_ms: int) -> Recorder:
        publish = Recorder()
        for partition in range(PARTITIONS):
            self.offsets[partition] += 1
            asyncio.run(self.processor.handle_sweep(messages.SweepTick(at_ms=at_ms), partition,
                                                    self.table, publish,
                                                    offset=self.offsets[partition]))
        return publish

    def states(self) -> list[Any]:
        return [load_state(raw) for raw in self.table.values()]


def updates(publish: Recorder) -> list[tuple[str, str, int, dict[str, Any] | None]]:
    """(owner, opportunity, version, payload) sent to the owner-queue topic."""
    found = []
    for key, value in publish.on(QUEUES):
        message = regroup.decode(value)
        assert isinstance(message, regroup.MemberBatch)
        assert key == message.group.encode()
        found += [(message.group, u.member, u.version, u.payload) for u in message.updates]
    return found


PROPOSAL = {**HEALTHY_DISCOVERY, "stage": "Proposal"}  # no next meeting: two alerts


# ---- the state side -------------------------------------------------------------------


def test_an_entry_is_sent_when_alerts_open_and_not_for_changes_it_does_not_show(
    rules: RuleSet,
) -> None:
    side = StateSide(rules)
    assert updates(side.send(change(0, opp="006A", **HEALTHY_DISCOVERY))) == []  # nothing open

    sent = updates(side.send(change(1, opp="006A", stage="Proposal")))
    ((owner, opp, version, payload),) = sent
    assert (owner, opp, version) == ("005OWNER1", "006A", 2)
    assert payload is not None
    assert {i["rule_id"] for i in payload["issues"]} == {"stage_gate_missing_fields",
                                                          "next_meeting_missing"}
    assert payload["amount"] == 40000.0

    # A field the queue does not show, an activity: alerts and fields shown unchanged.
    assert updates(side.send(change(1.5, opp="006A", probability=30))) == []
    assert updates(side.send(change(1.6, opp="006A", op="activity"))) == []
    # The same batch again (a redelivery): nothing new.
    assert updates(side.send(change(1, opp="006A", stage="Proposal", event_id="ev-x"),
                             change(1, opp="006A", stage="Proposal", event_id="ev-x"))) == []

    # The amount is shown: a new version of the entry.
    ((_, _, v2, payload2),) = updates(side.send(change(2, opp="006A", amount=90000.0)))
    assert v2 > version and payload2 is not None and payload2["amount"] == 90000.0


def test_an_owner_change_moves_the_entry_and_closing_removes_it(rules: RuleSet) -> None:
    side = StateSide(rules)
    side.send(change(0, opp="006A", **PROPOSAL))
    moved = updates(side.send(change(1, opp="006A", owner_id="005OWNER2")))
    assert [(o, p is None) for o, _, _, p in moved] == [("005OWNER1", True), ("005OWNER2", False)]
    assert len({v for _, _, v, _ in moved}) == 1

    closed = updates(side.send(change(2, opp="006A", stage="Closed Lost")))
    assert [(o, p) for o, _, _, p in closed] == [("005OWNER2", None)]
    assert updates(side.send(change(3, opp="006A", amount=1.0))) == []  # closed: no entry


def test_a_sweep_sends_the_alerts_that_time_opened(rules: RuleSet) -> None:
    side = StateSide(rules)
    side.send(change(0, opp="006A", **HEALTHY_DISCOVERY))
    ((owner, _, _, payload),) = updates(side.sweep(ms(200)))  # long past the close date
    assert owner == "005OWNER1" and payload is not None
    assert "close_date_past" in {i["rule_id"] for i in payload["issues"]}
    assert updates(side.sweep(ms(200))) == []


def test_a_failed_publish_is_repeated_with_the_same_versions(rules: RuleSet) -> None:
    side = StateSide(rules)
    first = change(0, opp="006A", **PROPOSAL)
    failing = Recorder(fail=True)
    with pytest.raises(ConnectionError):
        side.send(first, publish=failing)
    assert side.table == {}
    side.offsets[side.partition_of("006A")] -= 1  # the message is read again
    again = updates(side.send(first))
    assert [(o, m, v) for o, m, v, _ in again] == [("005OWNER1", "006A", 1)]


# ---- the owner side ------------------------------------------------------------------------


class OwnerSide:
    def __init__(self, rules: RuleSet, tombstone_days: int = 14) -> None:
        self.queues = OwnerQueues(PARTITIONS, MONDAY_8, rules.version, DIGESTS, tombstone_days)
        self.partition_of = Partitioner(PARTITIONS)
        self.table: dict[bytes, bytes] = {}

    def deliver(self, records: Iterable[tuple[bytes | None, bytes]]) -> None:
        for key, value in records:
            assert key is not None
            message = regroup.decode(value)
            assert isinstance(message, regroup.MemberBatch)
            self.queues.apply(message, self.partition_of(key.decode()), self.table)

    def queue(self, owner: str, now_ms: int) -> Digest:
        return self.queues.queue(owner, self.partition_of(owner), self.table, now_ms)

    def run(self, partition: int, at_ms: int, period: str) -> Recorder:
        publish = Recorder()
        tick = regroup.decode(regroup.encode_tick(at_ms, period))
        assert isinstance(tick, regroup.GroupTick)
        asyncio.run(self.queues.run_digests(tick, partition, self.table, publish))
        return publish


def portfolio(rng: random.Random) -> list[OpportunityChange]:
    """Deals of three owners spread over partitions, some moving owner."""
    changes = []
    for n in range(30):
        fields = dict(PROPOSAL if n % 3 else HEALTHY_DISCOVERY)
        fields["owner_id"] = f"005OWNER{n % 3}"
        fields["amount"] = float(rng.randrange(1, 100) * 1000)
        changes.append(change(0, opp=f"006D{n:02d}", **fields))
    for n in range(0, 30, 4):
        changes.append(change(1, opp=f"006D{n:02d}", owner_id=f"005OWNER{(n + 1) % 3}"))
    for n in range(0, 30, 7):
        changes.append(change(2, opp=f"006D{n:02d}", stage="Closed Won"))
    return changes


def test_each_owners_queue_is_what_the_builder_makes_from_the_states(rules: RuleSet) -> None:
    rng = random.Random(5)
    side = StateSide(rules)
    owners = OwnerSide(rules)
    for c in portfolio(rng):
        owners.deliver(side.send(c).on(QUEUES))
    now = ms(3)
    states = side.states()
    for owner in ("005OWNER0", "005OWNER1", "005OWNER2"):
        partitions = {side.partition_of(s.opportunity_id) for s in states
                      if s.fields.get("owner_id") == owner}
        assert len(partitions) > 1, "the owner's deals should sit on several partitions"
        got = owners.queue(owner, now)
        want = build_digest(owner, states, side.engine, now, got.period_start)
        assert got == want
        assert got.items, owner
        amounts = [i.amount or 0.0 for i in got.items]
        assert amounts == sorted(amounts, reverse=True)


def test_duplicated_and_shuffled_entry_delivery_gives_the_same_queues(rules: RuleSet) -> None:
    rng = random.Random(8)
    side = StateSide(rules)
    records: list[tuple[bytes | None, bytes]] = []
    for c in portfolio(rng):
        records += side.send(c).on(QUEUES)
    in_order, shuffled = OwnerSide(rules), OwnerSide(rules)
    in_order.deliver(records)
    mixed = records + rng.sample(records, len(records) // 2)
    rng.shuffle(mixed)
    shuffled.deliver(mixed)
    assert shuffled.table == in_order.table


def test_a_period_runs_once_per_partition_and_an_emptied_queue_gets_an_empty_digest(
    rules: RuleSet,
) -> None:
    side = StateSide(rules)
    owners = OwnerSide(rules, tombstone_days=14)
    owners.deliver(side.send(change(0, opp="006A", **PROPOSAL),
                             change(0, opp="006B", **{**PROPOSAL, "amount": 90000.0})).on(QUEUES))
    partition = owners.partition_of("005OWNER1")
    at = ms(7)

    digests = owners.run(partition, at, "2026-01-12").on(DIGESTS)
    ((key, raw),) = digests
    digest = Digest.model_validate_json(raw)
    assert key == b"005OWNER1"
    assert digest.period_start == date(2026, 1, 12)
    assert [i.opportunity_id for i in digest.items] == ["006B", "006A"]
    assert digest.amount_at_risk == 130000.0
    assert owners.run(partition, at + 1000, "2026-01-12").published == []  # already sent
    assert all(owners.run(p, at, "2026-01-12").published == []
               for p in range(PARTITIONS) if p != partition)

    owners.deliver(side.send(change(8, opp="006A", stage="Closed Lost"),
                             change(8, opp="006B", stage="Closed Won")).on(QUEUES))
    ((_, raw),) = owners.run(partition, ms(14), "2026-01-19").on(DIGESTS)
    assert orjson.loads(raw)["items"] == []  # the keyed topic must not keep last week's list
    # Past the tombstone retention the owner has nothing left to be told.
    assert owners.run(partition, ms(40), "2026-02-09").published == []


def test_a_digest_run_marks_what_the_owner_snoozed_with_one_lookup(rules: RuleSet) -> None:
    side = StateSide(rules)
    owners = OwnerSide(rules)
    asked: list[list[tuple[str, str]]] = []

    async def snoozed(keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        asked.append(keys)
        return {key: ms(9) for key in keys if key[0] == "006A"}

    owners.queues.snoozed = snoozed
    owners.deliver(side.send(change(0, opp="006A", **PROPOSAL),
                             change(0, opp="006B", **{**PROPOSAL, "amount": 90000.0})).on(QUEUES))
    ((_, raw),) = owners.run(owners.partition_of("005OWNER1"), ms(7), "2026-01-12").on(DIGESTS)
    digest = Digest.model_validate_json(raw)
    marks = {i.opportunity_id: {x.snoozed_until is not None for x in i.issues}
             for i in digest.items}
    assert marks == {"006A": {True}, "006B": {False}}
    assert len(asked) == 1 and {opp for opp, _ in asked[0]} == {"006A", "006B"}
