"""Owner queues in the stream: each opportunity's queue entry sent to its
owner's partition, and each owner's complete queue read there.

The queue is built from the open conditions (the state's open alerts and
the checks that raised them), not from what was posted: an alert the alert
policy kept out of real time (digest-only, over budget, snoozed) is in the
queue like any other. The entry's texts are those of the last time the
entry changed; a count of days in a message is not refreshed every day.

``OwnerQueueRegrouping`` is the state agent's side (see
``processor.stream.regroup``); ``OwnerQueues`` is the owner agent's work,
free of Faust like the state processor: it stores entries, answers an
owner's current queue, and runs a period's digests for one partition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import date

from processor.alerts.digest_schedule import WeeklySchedule
from processor.alerts.queue import (
    SnoozeKey,
    digest_of,
    queue_item,
    rank,
    snooze_keys,
    with_snoozes,
)
from processor.core import fields as f
from processor.core.clock import DAY_MS, from_ms
from processor.core.engine import Engine
from processor.stream import metrics
from processor.stream.regroup import (
    GroupedTable,
    GroupTick,
    MemberBatch,
    Membered,
    Membership,
    Payload,
    Table,
)
from schemas import Digest, OpportunityState, QueueItem

Publish = Callable[[list[tuple[str, bytes | None, bytes]]], Awaitable[None]]
SnoozeLookup = Callable[[list[SnoozeKey]], Awaitable[Mapping[SnoozeKey, int]]]
"""(opportunity, rule) pairs -> the expiry of those snoozed now; {} when unknown."""

_SHOWN = (f.NAME, f.PIPELINE, f.STAGE, f.AMOUNT, f.CURRENCY, f.CLOSE_DATE, f.MANAGER_ID)
"""The fields a queue item shows, besides the open alerts."""


class OwnerQueueRegrouping:
    """Which owner's queue an opportunity is in, and its entry there."""

    fields_read = frozenset((f.OWNER_ID, *_SHOWN))
    renders_from_light = False  # an item's texts come from the rules' findings

    def __init__(self, engine: Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic

    def membership(self, state: Membered) -> Membership | None:
        # Open alerts are the open conditions (a closed, deleted or merged
        # deal has none), so an opportunity with none has no entry.
        values = state.fields
        owner = values.get(f.OWNER_ID)
        if not owner or not state.open_alerts:
            return None
        shown = tuple(values.get(name) for name in _SHOWN)
        return str(owner), (shown, tuple(sorted(state.open_alerts.items())))

    def render(self, state: Membered, now_ms: int, membership: Membership) -> Payload | None:
        if not isinstance(state, OpportunityState):
            raise TypeError("an owner-queue item renders from the whole state")
        item = queue_item(state, self.engine, now_ms)
        return None if item is None else item.model_dump(mode="json")


def items_of(payloads: Iterable[Payload]) -> list[QueueItem]:
    """Stored entries as the queue shows them: biggest deals first."""
    return rank(QueueItem.model_validate(p) for p in payloads)


class OwnerQueues:
    """The owner agent's work over its table of (owner, opportunity) slots."""

    def __init__(
        self,
        partitions: int,
        schedule: WeeklySchedule,
        ruleset_version: str,
        digests_topic: str,
        tombstone_days: int,
        snoozed: SnoozeLookup | None = None,
    ) -> None:
        self.snoozed = snoozed
        self.slots = GroupedTable(partitions)
        self.schedule = schedule
        self.ruleset_version = ruleset_version
        self.digests_topic = digests_topic
        self.tombstone_ms = tombstone_days * DAY_MS

    def forget(self) -> None:
        self.slots.forget()

    def apply(self, batch: MemberBatch, partition: int, table: Table) -> int:
        stored = self.slots.apply(batch, partition, table)
        metrics.QUEUE_UPDATES.inc(stored)
        return stored

    def queue(self, owner_id: str, partition: int, table: Table, now_ms: int) -> Digest:
        """The owner's current queue, as the digest of the current period
        would show it now (an owner with nothing to fix: no items)."""
        return self._digest(owner_id, partition, table,
                            self.schedule.period(from_ms(now_ms)), now_ms)

    async def marked(self, digests: list[Digest]) -> list[Digest]:
        """The digests with their snoozed issues marked (one lookup for all)."""
        if self.snoozed is None or not digests:
            return digests
        until = await self.snoozed(snooze_keys(digests))
        return [with_snoozes(digest, until) for digest in digests]

    def _digest(
        self, owner_id: str, partition: int, table: Table, period: date, now_ms: int
    ) -> Digest:
        items = items_of(self.slots.members(owner_id, partition, table))
        return digest_of(owner_id, items, period, now_ms, self.ruleset_version)

    async def run_digests(
        self, tick: GroupTick, partition: int, table: Table, publish: Publish
    ) -> int:
        """Publishes the period's digest of every owner on ``partition`` (an
        owner whose queue emptied within the tombstone retention gets an
        empty one, so the keyed topic does not keep last week's list as
        current), acknowledged
        before the period is marked done: a crash repeats a run, never loses
        it. Returns the number of digests, 0 when the period was done."""
        done = self.slots.mark(partition, table)
        if done is not None and done >= tick.period:
            metrics.DIGEST_RUNS.labels(outcome="already_sent").inc()
            return 0
        period = date.fromisoformat(tick.period)
        self.slots.prune(partition, table, tick.at_ms - self.tombstone_ms)
        digests = await self.marked([
            self._digest(owner_id, partition, table, period, tick.at_ms)
            for owner_id in self.slots.groups(partition, table)])
        records: list[tuple[str, bytes | None, bytes]] = [
            (self.digests_topic, digest.owner_id.encode(), digest.model_dump_json().encode())
            for digest in digests]
        if records:
            await publish(records)
        self.slots.set_mark(partition, table, tick.period)
        metrics.DIGESTS.inc(len(records))
        metrics.DIGEST_RUNS.labels(outcome="sent").inc()
        return len(records)
