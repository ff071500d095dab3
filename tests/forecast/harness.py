"""The rollup path without Kafka: the state processor (with the rollup
regrouping) over its own table, the rollup agent's work over another, and
the oracle: rollups summed directly over opportunity states."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from processor.forecast.book import exact
from processor.forecast.entry import RollupRegrouping, entry_of
from processor.forecast.fiscal import FiscalCalendar
from processor.forecast.rollup_table import ManagerRollups, RollupTopics, decode
from processor.rules import RuleSet
from processor.stream import regroup
from processor.stream.routing import Partitioner
from processor.stream.state import StateProcessor
from schemas import OpportunityChange, OpportunityState
from schemas.forecast import CATEGORY_ORDER, RollupRecord
from tests.alerts.test_owner_queue import PARTITIONS, TOPICS, Recorder
from tests.alerts.test_owner_queue import StateSide as OwnerQueueStateSide

ROLLUP_TOPICS = RollupTopics("t.members", "t.rollups", "t.rollup-rows", "t.override-log",
                             "t.dead-letter")
Message = tuple[bytes | None, bytes]


class StateSide(OwnerQueueStateSide):
    """The owner-queue tests' state side, feeding the rollups instead:
    ``send`` handles one message of the changes topic per partition touched,
    at that partition's next offset, and answers the entry updates sent."""

    def __init__(self, rules: RuleSet, calendar: FiscalCalendar) -> None:
        super().__init__(rules)
        self.processor = StateProcessor(
            self.engine, TOPICS, PARTITIONS,
            regroupings=[RollupRegrouping(rules, calendar, ROLLUP_TOPICS.members)])

    def entries(self, *changes: OpportunityChange) -> list[Message]:
        return self.send(*changes).on(ROLLUP_TOPICS.members)

    def current(self) -> list[OpportunityState]:
        return [s for s in self.states() if s is not None]


class RollupSide:
    def __init__(self, calendar: FiscalCalendar) -> None:
        self.rollups = ManagerRollups(PARTITIONS, calendar, ROLLUP_TOPICS, 14)
        self.partition_of = Partitioner(PARTITIONS)
        self.table: dict[bytes, bytes] = {}
        self.publish = Recorder()

    def deliver(self, records: Iterable[Message]) -> list[str]:
        """Hands each message to its manager's partition; the outcomes of
        the overrides among them."""
        outcomes = []
        for key, value in records:
            assert key is not None
            partition = self.partition_of(key.decode())
            message = decode(value)
            if isinstance(message, regroup.MemberBatch):
                self.rollups.apply(message, partition, self.table)
            elif isinstance(message, regroup.GroupTick):
                asyncio.run(self.rollups.flush(message, partition, self.table, self.publish))
            else:
                outcomes.append(asyncio.run(
                    self.rollups.override(message, partition, self.table, self.publish)))
        return outcomes

    def flush(self, at_ms: int = 0) -> list[RollupRecord]:
        before = len(self.publish.published)
        for partition in range(PARTITIONS):
            tick = regroup.decode(regroup.encode_tick(at_ms, "flush"))
            assert isinstance(tick, regroup.GroupTick)
            asyncio.run(self.rollups.flush(tick, partition, self.table, self.publish))
        return [RollupRecord.model_validate_json(v) for t, _, v in
                self.publish.published[before:] if t == ROLLUP_TOPICS.rollups]

    def latest(self) -> dict[tuple[str, str], RollupRecord]:
        """What an upsert on record_id keeps of everything published."""
        found: dict[tuple[str, str], RollupRecord] = {}
        for key, value in self.publish.on(ROLLUP_TOPICS.rollups):
            record = RollupRecord.model_validate_json(value)
            assert key == record.manager_id.encode()
            found[record.manager_id, record.period] = record
        return found


Totals = dict[tuple[str, str], dict[str, dict[str, Any]]]


def oracle(states: Iterable[OpportunityState], rules: RuleSet,
           calendar: FiscalCalendar) -> Totals:
    """(manager, period) -> category -> {"count", "totals": {currency: (sum, count)},
    "won": ..., "lost": ...}, summed directly over the states."""
    found: Totals = {}
    for state in states:
        got = entry_of(state, rules, calendar)
        if got is None:
            continue
        manager, entry = got
        bucket = found.setdefault((manager, entry.period), {})
        line = bucket.setdefault(entry.category, {"count": 0, "totals": {}, "won": {},
                                                  "lost": {}})
        line["count"] += 1
        parts = ["totals"] + ([entry.outcome] if entry.outcome != "open" else [])
        for part in parts:
            amount, count = line[part].get(entry.currency, (Decimal(0), 0))
            if entry.amount is not None:
                amount += exact(entry.amount)
            line[part][entry.currency] = (amount, count + 1)
    return found


def as_totals(record: RollupRecord) -> dict[str, dict[str, Any]]:
    """A record in the oracle's shape (categories without deals left out)."""
    out: dict[str, dict[str, Any]] = {}
    assert [c.category for c in record.categories] == list(CATEGORY_ORDER)
    for line in record.categories:
        if line.count == 0:
            assert line.totals == line.won == line.lost == []
            continue
        out[line.category] = {
            "count": line.count,
            **{part: {t.currency: (exact(t.amount), t.count) for t in getattr(line, part)}
               for part in ("totals", "won", "lost")},
        }
    assert record.count == sum(line.count for line in record.categories)
    return out


def float_exact(totals: Totals) -> Totals:
    """The oracle as published: each sum rounded to a float once."""
    return {key: {cat: {**line, **{part: {c: (exact(float(a)), n) for c, (a, n) in
                                          line[part].items()}
                                   for part in ("totals", "won", "lost")}}
                  for cat, line in bucket.items()}
            for key, bucket in totals.items()}


def compare(records: dict[tuple[str, str], RollupRecord], want: Totals) -> None:
    got = {key: as_totals(r) for key, r in records.items()}
    got = {key: lines for key, lines in got.items() if lines}  # emptied buckets: zeros
    assert got == float_exact(want)
