"""The state agent's work: apply a batch of changes, or a sweep, to the
opportunities of one partition, and publish what the engine says.

Kept free of Faust so it can be read (and tested) on its own: the agent hands
it a table-like mapping and a publish function. Outputs are published and
acknowledged before the new states are written to the table, so a crash can
only make the batch run again (outputs repeated under the same ids), never
leave a state that says "done" for outputs that were never sent.

With an alert policy (``processor.alerts.shell``), a batch's alerts are held
back and decided in one call just before that publish; if the publish fails,
the decision is released so the re-run is decided afresh. Repeats that a
re-run batch publishes again are what the policy's dedup absorbs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from processor.core.engine import Engine
from processor.core.outcome import Outcome
from processor.stream import messages, metrics
from processor.stream.changelog import Persist, write_mapping
from processor.stream.messages import ChangeBatch, RawChanges, SweepTick
from processor.stream.regroup import Outbox, Regrouping
from processor.stream.routing import Partitioner
from processor.stream.store_items import Item, partitioned_items
from schemas import AlertRecord, DeadLetter, OpportunityChange, OpportunityState, Record
from schemas.state import state_from_json, state_to_json

if TYPE_CHECKING:
    from processor.alerts.shell import AlertPolicy

log = logging.getLogger(__name__)

Publish = Callable[[list[tuple[str, bytes | None, bytes]]], Awaitable[None]]
"""Sends (topic, key, value) triples and returns once all are acknowledged."""


@dataclass
class Topics:
    alerts: str
    stage_history: str
    commands: str
    dead_letter: str


def load_state(raw: bytes | None) -> OpportunityState | None:
    return None if raw is None else state_from_json(raw)


def dump_state(state: OpportunityState) -> bytes:
    return state_to_json(state)


_DUE = re.compile(rb'"next_due_ms":(-?\d+)')


def due_of(raw: bytes) -> int | None:
    """Reads the due time straight from stored bytes: rebuilding the index
    after a rebalance must not parse a million states."""
    match = _DUE.search(raw)
    return int(match.group(1)) if match else None


@dataclass
class PartitionIndex:
    """Per partition, each stored opportunity and when a sweep next needs it:
    built lazily from the table after a (re)assignment, kept current on
    writes, so a sweep touches only what is due instead of every state."""

    partition_of: Partitioner
    due: dict[int, dict[bytes, int | None]] = field(default_factory=dict)

    def forget(self) -> None:
        self.due.clear()

    def for_partition(
        self, partition: int, table_items: Callable[[], Iterable[Item]]
    ) -> dict[bytes, int | None]:
        """``table_items`` yields (key, stored bytes, partition if the store
        knows it): hashing is the costly part of a rebuild, so only keys of
        unknown partition are hashed."""
        known = self.due.get(partition)
        if known is None:
            due = self.due
            for p in range(self.partition_of.partitions):
                due.setdefault(p, {})
            partition_of = self.partition_of
            for key, raw, stored_on in table_items():
                on = stored_on if stored_on is not None else partition_of(key.decode())
                due[on][key] = due_of(raw)
            known = due[partition]
        return known

    def set(self, partition: int, key: bytes, due: int | None) -> None:
        known = self.due.get(partition)
        if known is not None:
            known[key] = due


class StateProcessor:
    CACHE_LIMIT = 200_000

    def __init__(
        self,
        engine: Engine,
        topics: Topics,
        partitions: int,
        regroupings: Sequence[Regrouping] = (),
        policy: AlertPolicy | None = None,
        persist: Persist = write_mapping,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.persist = persist
        """How a batch's states reach the table (the worker's writes its
        changelog directly: ``processor.stream.changelog``)."""
        self.topics = topics
        self.regroupings = regroupings
        """Tables keyed by something else than the opportunity (owner
        queues) that this agent keeps fed with each opportunity's entry."""
        self.index = PartitionIndex(Partitioner(partitions))
        self.cache: dict[bytes, OpportunityState] = {}
        """Decoded states as last written by this worker: parsing a state costs
        more than applying a change to it. Dropped whenever partitions move,
        and for a batch whose handling fails, so it never holds what the
        table does not."""

    def forget(self) -> None:
        """Partitions were revoked: what we know may be stale elsewhere."""
        self.index.forget()
        self.cache.clear()

    @staticmethod
    def decode(raw: bytes) -> ChangeBatch | SweepTick:
        """How the state agent reads a ``hygiene.changes`` message for this
        processor: validated into models."""
        return messages.decode(raw)

    def _load(self, key: bytes, table: MutableMapping[bytes, bytes]) -> OpportunityState | None:
        state = self.cache.get(key)
        return state if state is not None else load_state(table.get(key))

    async def handle_changes(
        self,
        batch: ChangeBatch | RawChanges,
        partition: int,
        table: MutableMapping[bytes, bytes],
        publish: Publish,
        *,
        offset: int = 0,
    ) -> None:
        """``offset``: the batch's position in its partition, the version of
        the regrouped entries it produces (see ``processor.stream.regroup``)."""
        if isinstance(batch, RawChanges):
            batch = messages.as_change_batch(batch)
        by_opportunity: dict[str, list[OpportunityChange]] = {}
        for change in batch.changes:
            by_opportunity.setdefault(change.opportunity_id, []).append(change)
        out: list[tuple[str, bytes | None, bytes]] = []
        dirty: dict[bytes, OpportunityState] = {}
        outbox = Outbox(self.regroupings, offset)
        held: list[AlertRecord] = []
        try:
            await self._apply(by_opportunity, partition, table, out, dirty, outbox, held)
            metrics.CHANGES_APPLIED.inc(len(batch.changes))
            out.extend(outbox.messages())
            await self._finish(out, dirty, partition, table, publish, now_ms=0, held=held)
        except BaseException:
            self._drop(opportunity_id.encode() for opportunity_id in by_opportunity)
            raise

    async def _apply(
        self,
        by_opportunity: dict[str, list[OpportunityChange]],
        partition: int,
        table: MutableMapping[bytes, bytes],
        out: list[tuple[str, bytes | None, bytes]],
        dirty: dict[bytes, OpportunityState],
        outbox: Outbox,
        held: list[AlertRecord],
    ) -> None:
        for opportunity_id, changes in by_opportunity.items():
            key = opportunity_id.encode()
            state = self._load(key, table)
            before = outbox.before(state)
            for change in changes:
                try:
                    state, outcome = self.engine.apply(state, change)
                except Exception as exc:  # a bug must not stop the stream
                    log.exception("engine failed on %s", change.event_id)
                    out.append(self._dead_letter(change, exc, partition))
                    continue
                self._collect(key, outcome, out, held)
            if state is not None:
                outbox.after(state, before, 0)
                # Stored even when the batch changed nothing: a worker killed
                # between its RocksDB write and the changelog send restarts
                # with a local state ahead of the changelog, and the batch's
                # redelivery finds it unchanged; only this write heals it.
                dirty[key] = state

    def _drop(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self.cache.pop(key, None)

    async def handle_sweep(
        self,
        tick: SweepTick,
        partition: int,
        table: MutableMapping[bytes, bytes],
        publish: Publish,
        *,
        offset: int = 0,
    ) -> None:
        out: list[tuple[str, bytes | None, bytes]] = []
        dirty: dict[bytes, OpportunityState] = {}
        outbox = Outbox(self.regroupings, offset)
        held: list[AlertRecord] = []
        now = tick.at_ms
        index = self.index.for_partition(partition, lambda: partitioned_items(table))
        due_keys = [key for key, due in index.items() if due is not None and due <= now]
        try:
            for key in due_keys:
                state = self._load(key, table)
                if state is None:
                    continue
                before = outbox.before(state)
                outcome = self.engine.sweep(state, now)
                outbox.after(state, before, now)
                self._collect(key, outcome, out, held)
                # Re-arm even when nothing changed: the next due time moved on.
                dirty[key] = state
            metrics.SWEEPS.inc()
            out.extend(outbox.messages())
            await self._finish(out, dirty, partition, table, publish, now_ms=now, held=held)
        except BaseException:
            self._drop(due_keys)
            raise

    async def _finish(
        self,
        out: list[tuple[str, bytes | None, bytes]],
        dirty: dict[bytes, OpportunityState],
        partition: int,
        table: MutableMapping[bytes, bytes],
        publish: Publish,
        *,
        now_ms: int,
        held: list[AlertRecord] | None = None,
    ) -> None:
        """Publishes (the ``held`` alerts as the policy decides, with one call
        and none when there are none), waits for the acks, then stores the
        states with their next due time (from the later of ``now_ms`` and
        each state's latest event)."""
        await publish_decided(
            self.policy, held or [], out, publish,
            lambda record: self._alert_out(record.opportunity_id.encode(), record, out))
        engine = self.engine
        writes: dict[bytes, bytes] = {}
        for key, state in dirty.items():
            state.next_due_ms = engine.next_due(state, now_ms)
            writes[key] = dump_state(state)
        await (await self.persist(table, writes, partition))
        cache = self.cache
        for key, state in dirty.items():
            if len(cache) >= self.CACHE_LIMIT:
                cache.clear()
            cache[key] = state
            self.index.set(partition, key, state.next_due_ms)

    def _collect(
        self,
        key: bytes,
        outcome: Outcome,
        out: list[tuple[str, bytes | None, bytes]],
        held: list[AlertRecord],
    ) -> None:
        topics = self.topics
        for alert in outcome.alerts:
            if self.policy is not None:
                held.append(alert)
            else:
                self._alert_out(key, alert, out)
        # Most changes produce neither; a counter increment takes a lock.
        if outcome.history:
            for record in outcome.history:
                out.append((topics.stage_history, key, _json(record)))
            metrics.STAGE_HISTORY.inc(len(outcome.history))
        if outcome.commands:
            for command in outcome.commands:
                out.append((topics.commands, key, _json(command)))
            metrics.COMMANDS.inc(len(outcome.commands))

    def _alert_out(
        self, key: bytes, alert: AlertRecord, out: list[tuple[str, bytes | None, bytes]]
    ) -> None:
        out.append((self.topics.alerts, key, _json(alert)))
        counter = metrics.ALERTS if alert.kind == "alert" else metrics.RESOLUTIONS
        counter.labels(rule=alert.rule_id).inc()

    def _dead_letter(
        self, change: OpportunityChange, exc: Exception, partition: int
    ) -> tuple[str, bytes | None, bytes]:
        return processing_dead_letter(
            self.topics.dead_letter, change.opportunity_id.encode(),
            change.model_dump_json().encode(), f"{type(exc).__name__}: {exc}", partition)


async def publish_decided(
    policy: AlertPolicy | None,
    held: list[AlertRecord],
    out: list[tuple[str, bytes | None, bytes]],
    publish: Publish,
    alert_out: Callable[[AlertRecord], None],
) -> None:
    """Publishes ``out`` with the ``held`` alerts as the policy decides them
    (``alert_out`` appends one; one decision call, none when nothing is
    held) and waits for the acks. If the publish fails, the decision is
    released, so the re-run of the unit is decided afresh."""
    decided = None
    if held and policy is not None:
        decided = await policy.decide(held)
        for record in decided.records:
            alert_out(record)
    if out:
        try:
            await publish(out)
        except BaseException:
            if decided is not None:
                await decided.release()
            raise


def processing_dead_letter(
    topic: str, key: bytes | None, original: bytes, error: str, partition: int
) -> tuple[str, bytes | None, bytes]:
    """A change the engine failed on, as both state processors send it: the
    change's own JSON as the original, so it can be re-driven alone."""
    from datetime import UTC, datetime

    record = DeadLetter.of(
        "processing_error", error, source="hygiene.changes", original=original,
        received_at=datetime.now(UTC), key=key, partition=partition)
    metrics.DEAD_LETTERS.labels(reason="processing_error").inc()
    return topic, key, _json(record)


def _json(record: Record) -> bytes:
    return record.model_dump_json().encode()


