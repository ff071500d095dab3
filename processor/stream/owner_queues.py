"""The owner-queue agent, its table and the digest timer, wired to one app.

Entries arrive on the owner-queues topic keyed by owner id, so the table's
slots for an owner all live on that owner's partition (recovered from its
changelog like the opportunities table). The timer only decides when: it
asks the owner of each partition this worker actively owns to run the due
period, and the agent, which alone may write the table, runs it once.

``await current(owner_id, now_ms)`` is the entry point for ``GET
/v1/queues/{owner_id}``; the table is keyed so that Faust's
``app.table_route(table=..., match_info="owner_id")`` sends a request to the
worker that owns the owner's partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import faust
from redis.exceptions import RedisError

from processor.alerts.actions import AlertActions
from processor.alerts.digest_schedule import WEEKDAYS, WeeklySchedule
from processor.alerts.owner_queue import OwnerQueueRegrouping, OwnerQueues, Publish
from processor.alerts.queue import SnoozeKey
from processor.core.clock import from_ms
from processor.core.engine import Engine
from processor.settings import Settings
from processor.stream import metrics, regroup
from processor.stream.changelog import PendingWrites, Persist, run_table_agent
from processor.stream.ownership import active_partitions, settled
from processor.stream.routing import Partitioner
from processor.stream.topics import OWNER_QUEUE_TABLE
from schemas import Digest

log = logging.getLogger(__name__)


def schedule_of(settings: Settings) -> WeeklySchedule:
    return WeeklySchedule(WEEKDAYS.index(settings.digest_weekday), settings.digest_time,
                          ZoneInfo(settings.digest_timezone))


class QueueUnavailable(Exception):
    """This worker cannot answer for the owner now: another worker owns the
    partition, or the partition is being moved or recovered."""

    def __init__(self, owner_id: str, partition: int, reason: str) -> None:
        super().__init__(f"queue of {owner_id!r} (partition {partition}): {reason}")
        self.partition = partition
        self.reason = reason


class OwnerQueueService:
    def __init__(self, app: faust.App, settings: Settings, ruleset_version: str,
                 actions: AlertActions | None = None) -> None:
        self.app = app
        self.settings = settings
        topics = settings.topics
        self.topic = app.topic(topics.owner_queues, key_serializer="raw",
                               value_serializer="raw", partitions=settings.partitions)
        self.table = app.Table(OWNER_QUEUE_TABLE, default=None, partitions=settings.partitions,
                               key_type=bytes, value_type=bytes)
        self.table.key_serializer = "raw"  # type: ignore[attr-defined]
        self.table.value_serializer = "raw"  # type: ignore[attr-defined]
        self.schedule = schedule_of(settings)
        self.snoozes = SnoozeMarks(actions) if actions is not None else None
        self.queues = OwnerQueues(settings.partitions, self.schedule, ruleset_version,
                                  topics.digests, settings.queue_tombstone_days,
                                  snoozed=self.snoozes.lookup if self.snoozes else None)
        self.partition_of = Partitioner(settings.partitions)
        self.topic_name: str = self.topic.get_topic_name()

    def regrouping(self, engine: Engine) -> OwnerQueueRegrouping:
        """The state agent's side: what it sends to this service's topic."""
        return OwnerQueueRegrouping(engine, self.settings.topics.owner_queues)

    def wire(self, publish: Publish, persist: Persist) -> None:
        app, queues, stored = self.app, self.queues, self.table

        async def handle(value: bytes, partition: int, table: PendingWrites) -> None:
            message = regroup.decode(value)
            if isinstance(message, regroup.MemberBatch):
                queues.apply(message, partition, table)
                return
            sent = await queues.run_digests(message, partition, table, publish)
            if sent:
                log.info("published %d digests for %s from partition %d",
                         sent, message.period, partition)

        @app.agent(self.topic, name="hygiene.owner-queues")
        async def owner_queue_agent(stream: Any) -> None:
            await run_table_agent(
                stream, app, stored, handle, agent="hygiene.owner-queues", publish=publish,
                persist=persist, dead_letter_topic=self.settings.topics.dead_letter,
                forget=queues.forget)

        @app.timer(self.settings.digest_check_seconds)  # type: ignore[untyped-decorator]
        async def digest_timer() -> None:
            await self.request_digests(int(time.time() * 1000))

        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.queues.forget()


    async def request_digests(self, now_ms: int) -> int:
        """Asks for the due period's run on each partition this worker
        actively owns and has not run it yet (standbys skipped; nothing asked
        mid-rebalance or recovery: the new owner asks on its next check)."""
        period = self.schedule.period(from_ms(now_ms)).isoformat()
        asked = 0
        for partition in active_partitions(self.app, self.topic_name):
            done = self.queues.slots.mark(partition, self.table)
            if done is not None and done >= period:
                metrics.DIGEST_CHECKS.labels(outcome="done").inc()
                continue
            await self.topic.send(value=regroup.encode_tick(now_ms, period), partition=partition)
            metrics.DIGEST_CHECKS.labels(outcome="asked").inc()
            asked += 1
        return asked

    async def current(self, owner_id: str, now_ms: int) -> Digest:
        """The owner's current hygiene queue (the digest of the current
        period as it stands at ``now_ms``, snoozed issues marked). Raises
        QueueUnavailable when this worker does not actively own the owner's
        partition right now."""
        partition = self.partition_of(owner_id)
        if not settled(self.app):
            raise QueueUnavailable(owner_id, partition, "rebalancing or recovering")
        if partition not in active_partitions(self.app, self.topic_name):
            raise QueueUnavailable(owner_id, partition, "owned by another worker")
        (digest,) = await self.queues.marked(
            [self.queues.queue(owner_id, partition, self.table, now_ms)])
        return digest


class SnoozeMarks:
    """Which queue issues the owner snoozed, from the alert policy's Redis.
    Redis down costs the marks, never the digest: a digest without them
    lists snoozed issues as open, as a worker without the policy does."""

    def __init__(self, actions: AlertActions) -> None:
        self.actions = actions

    async def lookup(self, keys: list[SnoozeKey]) -> Mapping[SnoozeKey, int]:
        try:
            return await self.actions.snoozed(keys)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("snoozes unknown (Redis: %s); queue issues left unmarked", exc)
            metrics.SNOOZE_LOOKUPS_FAILED.inc()
            return {}
