"""The rollup agent's work over its table, free of Faust like the state
processor: the agent hands it the table, its partition and a publish
function.

The table is partitioned by manager (``processor.stream.regroup``): one slot
per (manager, opportunity) holding the opportunity's entry, and beside the
slots, per manager, the standing override of each (period, category) and the
ids of the overrides already applied. The per-bucket totals (``Book``) are
derived from those keys: rebuilt once after partitions move, then kept
current slot change by slot change. A rebuilt book has every bucket dirty,
so a worker that takes over a partition republishes its rollups once.

Overrides reach this agent on the same internal topic as the slots, keyed by
manager, so an override is decided against exactly the updates that came
before it on the manager's partition.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import orjson
from pydantic import Field, TypeAdapter

from processor.core.clock import DAY_MS
from processor.forecast.book import Book
from processor.forecast.entry import Entry
from processor.forecast.fiscal import FiscalCalendar
from processor.forecast.overrides import OverrideRefused, decide, parse_override, view_of
from processor.forecast.rows import rollup_rows, standing
from processor.stream import metrics
from processor.stream.regroup import (
    GroupedTable,
    GroupTick,
    MemberBatch,
    MemberUpdate,
    Payload,
    Table,
    aside_key,
    decode_slot,
    is_tombstone,
    split_key,
)
from processor.stream.routing import Partitioner
from schemas import DeadLetter, Record, ms_to_datetime
from schemas.forecast import OverrideRequest, OverrideView

Out = list[tuple[str, bytes | None, bytes]]
Publish = Callable[[Out], Awaitable[None]]

_OVERRIDE = "override"
_APPLIED = "applied"
_ROWS = "rows"
_OVERRIDE_PREFIX = aside_key(_OVERRIDE)
PRUNE_EVERY_MS = 3_600_000


@dataclass(frozen=True)
class RollupTopics:
    members: str
    rollups: str
    rollup_rows: str
    override_log: str
    dead_letter: str


class OverrideMessage(Record):
    """An override on its way to its manager's partition, with where it came
    from, so a refusal there still dead-letters the original bytes."""

    kind: Literal["override"] = "override"
    request: OverrideRequest
    received_at_ms: int
    source: str
    partition: int | None = None
    offset: int | None = None
    original_key_b64: str | None = None
    original_value_b64: str


_MESSAGE: TypeAdapter[MemberBatch | GroupTick | OverrideMessage] = TypeAdapter(
    Annotated[MemberBatch | GroupTick | OverrideMessage, Field(discriminator="kind")]
)


def decode(raw: bytes) -> MemberBatch | GroupTick | OverrideMessage:
    return _MESSAGE.validate_json(raw)


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def route_override(
    raw: bytes,
    key: bytes | None,
    topics: RollupTopics,
    *,
    source: str,
    partition: int | None,
    offset: int | None,
    received_at_ms: int,
) -> tuple[str, bytes | None, bytes]:
    """Where an input override goes: to its manager's partition of the
    members topic, or (unreadable, no reason, not a valid request) to the
    dead-letter topic under its original key."""
    try:
        request = parse_override(raw)
    except OverrideRefused as refusal:
        metrics.OVERRIDES.labels(outcome=refusal.code).inc()
        return topics.dead_letter, key, _dead_letter(
            refusal, source, partition, offset, _b64(key), _b64(raw) or "", received_at_ms)
    message = OverrideMessage(
        request=request, received_at_ms=received_at_ms, source=source, partition=partition,
        offset=offset, original_key_b64=_b64(key), original_value_b64=_b64(raw) or "")
    return topics.members, request.manager_id.encode(), message.model_dump_json().encode()


def _dead_letter(
    refusal: OverrideRefused,
    source: str,
    partition: int | None,
    offset: int | None,
    key_b64: str | None,
    value_b64: str,
    received_at_ms: int,
) -> bytes:
    metrics.DEAD_LETTERS.labels(reason=refusal.reason).inc()
    return DeadLetter(
        reason=refusal.reason, error=str(refusal), source=source, partition=partition,
        offset=offset, original_key_b64=key_b64, original_value_b64=value_b64,
        received_at=ms_to_datetime(received_at_ms),
    ).model_dump_json().encode()


def _entry(payload: Payload | None) -> Entry | None:
    return None if payload is None else Entry.from_payload(payload)


class ManagerRollups:
    def __init__(
        self,
        partitions: int,
        calendar: FiscalCalendar,
        topics: RollupTopics,
        tombstone_days: int,
    ) -> None:
        self.slots = GroupedTable(partitions)
        self.partition_of = Partitioner(partitions)
        self.calendar = calendar
        self.topics = topics
        self.tombstone_ms = tombstone_days * DAY_MS
        self.books: dict[int, Book] | None = None
        self.pruned_at: dict[int, int] = {}

    def forget(self) -> None:
        """Partitions were revoked: what we know may be stale elsewhere."""
        self.slots.forget()
        self.books = None
        self.pruned_at.clear()

    def _books(self, table: Table) -> dict[int, Book]:
        books = self.books
        if books is None:
            books = {p: Book(self.calendar) for p in range(self.partition_of.partitions)}
            for key, raw in list(table.items()):
                names = split_key(key)
                if names is None:
                    if key.startswith(_OVERRIDE_PREFIX):
                        manager, period, category = (
                            key[len(_OVERRIDE_PREFIX):].decode().split("\x1f"))
                        stored = orjson.loads(raw)
                        books[self.partition_of(manager)].set_override(
                            manager, period, category,
                            OverrideView.model_validate(stored["view"]), stored["at_ms"])
                    continue
                if is_tombstone(raw):
                    continue
                slot = decode_slot(raw)
                group = names[0]
                books[self.partition_of(group)].move(group, None, _entry(slot.payload),
                                                     slot.at_ms)
            self.books = books
        return books

    def book(self, partition: int, table: Table) -> Book:
        return self._books(table)[partition]

    def needs_flush(self, partition: int) -> bool:
        """A partition not read since it was assigned (its rollups are to be
        republished), or with buckets changed since the last publish."""
        return self.books is None or bool(self.books[partition].dirty)

    def apply(self, batch: MemberBatch, partition: int, table: Table) -> int:
        book = self.book(partition, table)

        def moved(group: str, member: str, old: Payload | None, update: MemberUpdate) -> None:
            book.move(group, _entry(old), _entry(update.payload), update.at_ms)

        stored = self.slots.apply(batch, partition, table, on_stored=moved)
        metrics.ROLLUP_UPDATES.inc(stored)
        return stored

    async def flush(self, tick: GroupTick, partition: int, table: Table,
                    publish: Publish) -> int:
        """Publishes the snapshot of every bucket on ``partition`` that
        changed since the last flush; returns how many."""
        book = self.book(partition, table)
        records = book.pending()
        if records:
            topic, rows_topic = self.topics.rollups, self.topics.rollup_rows
            out: Out = []
            shown: dict[bytes, list[tuple[str, str]]] = {}
            for r in records:
                key = r.manager_id.encode()
                out.append((topic, key, r.model_dump_json().encode()))
                # The row keys published last time are kept in the table (so
                # a partition's new owner still zeroes a currency that left).
                slot = aside_key(_ROWS, r.manager_id, r.period)
                stored = table.get(slot)
                before = [] if stored is None else [(c, cur) for c, cur in orjson.loads(stored)]
                rows = rollup_rows(r, before)
                out += [(rows_topic, key, row.model_dump_json().encode()) for row in rows]
                shown[slot] = standing(rows)
            await publish(out)
            for slot, keys in shown.items():
                if keys:
                    table[slot] = orjson.dumps(keys)
                elif table.get(slot) is not None:  # Faust's get: None when absent
                    del table[slot]
            book.published(records)
            metrics.ROLLUPS.inc(len(records))
        if tick.at_ms - self.pruned_at.get(partition, 0) >= PRUNE_EVERY_MS:
            self.slots.prune(partition, table, tick.at_ms - self.tombstone_ms)
            self.pruned_at[partition] = tick.at_ms
        return len(records)

    async def override(self, message: OverrideMessage, partition: int, table: Table,
                       publish: Publish) -> str:
        """Decides one override on its manager's partition: the ledger record
        published (and acknowledged) before the override is stored, or a
        dead letter. Returns the outcome: "accepted", "duplicate" or the
        refusal code."""
        book = self.book(partition, table)
        request = message.request
        manager = request.manager_id
        applied = aside_key(_APPLIED, manager, request.override_id)
        if table.get(applied) is not None:
            metrics.OVERRIDES.labels(outcome="duplicate").inc()
            return "duplicate"
        try:
            log = decide(book, request, message.received_at_ms)
        except OverrideRefused as refusal:
            key = None if message.original_key_b64 is None else base64.b64decode(
                message.original_key_b64)
            await publish([(self.topics.dead_letter, key, _dead_letter(
                refusal, message.source, message.partition, message.offset,
                message.original_key_b64, message.original_value_b64,
                message.received_at_ms))])
            metrics.OVERRIDES.labels(outcome=refusal.code).inc()
            return refusal.code
        await publish([(self.topics.override_log, manager.encode(),
                        log.model_dump_json().encode())])
        slot = aside_key(_OVERRIDE, manager, request.period, request.category)
        view = view_of(request) if request.amount is not None else None
        if view is None:
            if table.get(slot) is not None:  # Faust's get: None when absent
                del table[slot]
        else:
            table[slot] = orjson.dumps({"view": view.model_dump(mode="json"),
                                        "at_ms": message.received_at_ms})
        table[applied] = b"1"
        book.set_override(manager, request.period, request.category, view,
                          message.received_at_ms)
        metrics.OVERRIDES.labels(outcome="accepted").inc()
        return "accepted"
