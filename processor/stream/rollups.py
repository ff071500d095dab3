"""Manager rollups in the worker: the rollup agent, its table, the override
intake and the publish timer, wired to one app.

Entries and overrides arrive on the rollup-members topic keyed by manager
id, so a manager's slots, overrides and totals all live on that manager's
partition (recovered from its changelog like the other tables). Overrides
submitted on ``forecast.overrides`` (keyed by anything) are checked by the
intake agent and forwarded there; the ones it cannot read go to the
dead-letter topic at once.

Publishing is paced: the timer asks a partition's agent to publish its
changed buckets at most once per ``rollup_publish_seconds``, and only when
something changed (or the partition was just assigned: its rollups are then
republished once, which upserts absorb).

``submit_override`` is the entry point for the HTTP API.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import faust

from processor.forecast.entry import RollupRegrouping
from processor.forecast.fiscal import FiscalCalendar
from processor.forecast.overrides import load_json, validate_override
from processor.forecast.rollup_table import (
    ManagerRollups,
    OverrideMessage,
    Publish,
    RollupTopics,
    decode,
    route_override,
)
from processor.rules.config import RuleSet
from processor.settings import Settings
from processor.stream import regroup
from processor.stream.changelog import PendingWrites, Persist, run_table_agent
from processor.stream.failures import Origin, run_acked
from processor.stream.ownership import active_partitions
from processor.stream.topics import ROLLUP_TABLE
from schemas.forecast import OverrideRequest

log = logging.getLogger(__name__)


class RollupService:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        topics = settings.topics
        self.topics = RollupTopics(topics.rollup_members, topics.rollups, topics.rollup_rows,
                                   topics.override_log,
                                   topics.dead_letter)
        self.calendar = FiscalCalendar(settings.fiscal_year_start_month)
        self.members = app.topic(topics.rollup_members, key_serializer="raw",
                                 value_serializer="raw", partitions=settings.partitions)
        self.overrides = app.topic(topics.overrides, key_serializer="raw",
                                   value_serializer="raw")
        self.table = app.Table(ROLLUP_TABLE, default=None, partitions=settings.partitions,
                               key_type=bytes, value_type=bytes)
        self.table.key_serializer = "raw"  # type: ignore[attr-defined]
        self.table.value_serializer = "raw"  # type: ignore[attr-defined]
        self.rollups = ManagerRollups(settings.partitions, self.calendar, self.topics,
                                      settings.rollup_tombstone_days)
        self._publish: Publish | None = None

    def regrouping(self, rules: RuleSet) -> RollupRegrouping:
        """The state agent's side: what it sends to this service's topic."""
        return RollupRegrouping(rules, self.calendar, self.topics.members)

    def wire(self, publish: Publish, persist: Persist) -> None:
        app, rollups, stored, topics = self.app, self.rollups, self.table, self.topics
        self._publish = publish

        async def handle(value: bytes, partition: int, table: PendingWrites) -> None:
            message = decode(value)
            if isinstance(message, regroup.MemberBatch):
                rollups.apply(message, partition, table)
            elif isinstance(message, OverrideMessage):
                outcome = await rollups.override(message, partition, table, publish)
                log.info("override %s of %s: %s", message.request.override_id,
                         message.request.manager_id, outcome)
            else:
                await rollups.flush(message, partition, table, publish)

        @app.agent(self.members, name="forecast.rollups")
        async def rollup_agent(stream: Any) -> None:
            await run_table_agent(
                stream, app, stored, handle, agent="forecast.rollups", publish=publish,
                persist=persist, dead_letter_topic=self.settings.topics.dead_letter,
                forget=rollups.forget)

        @app.agent(self.overrides, name="forecast.override-intake")
        async def override_intake(stream: Any) -> None:
            async def route(origin: Origin) -> None:
                await publish([route_override(
                    origin.value, origin.key, topics, source=origin.topic,
                    partition=origin.partition, offset=origin.offset,
                    received_at_ms=int(time.time() * 1000))])

            await run_acked(stream, app, route, agent="forecast.override-intake",
                            publish=publish, dead_letter_topic=self.settings.topics.dead_letter)

        @app.timer(self.settings.rollup_publish_seconds)  # type: ignore[untyped-decorator]
        async def rollup_timer() -> None:
            await self.request_flushes(int(time.time() * 1000))

        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.rollups.forget()

    async def request_flushes(self, now_ms: int) -> int:
        """Asks each partition this worker actively owns that has changed
        buckets (or was just assigned) to publish them; nothing is asked
        mid-rebalance or recovery."""
        asked = 0
        for partition in active_partitions(self.app, self.members.get_topic_name()):
            if self.rollups.needs_flush(partition):
                await self.members.send(value=regroup.encode_tick(now_ms, "flush"),
                                        partition=partition)
                asked += 1
        return asked

    async def submit_override(
        self, body: bytes | Mapping[str, Any], *, submitted_by: str | None = None
    ) -> OverrideRequest:
        """Validates an override and puts it on ``forecast.overrides``,
        returning once the broker has it. ``submitted_by`` (the authenticated
        caller) replaces the body's; an ``override_id`` is generated when the
        body has none. Raises ``OverrideRefused`` (``.code``, ``.message``)
        for a request refused on its own: malformed JSON, missing or blank
        reason, invalid fields. Whether the manager and period are known is
        decided on the manager's partition, in order with the rollup's
        updates: the outcome is a ``forecast.override-log`` record (with the
        override id) or a dead letter (with the original bytes)."""
        data = load_json(body) if isinstance(body, bytes) else dict(body)
        if isinstance(data, dict):
            data.setdefault("override_id", str(uuid.uuid4()))
            if submitted_by is not None:
                data["submitted_by"] = submitted_by
        request = validate_override(data)
        publish = self._publish
        assert publish is not None, "wire() first"
        await publish([(self.settings.topics.overrides, request.manager_id.encode(),
                        request.model_dump_json().encode())])
        return request
