"""Regrouping: state kept per opportunity, read per something else.

The opportunities table is partitioned by opportunity id, but an owner's
hygiene queue (and, later, a manager's forecast rollup) needs every one of
that person's opportunities on one partition. So the state agent sends, for
each opportunity, its *member entry* to a topic keyed by the group (owner,
manager): when the entry changes, when it moves to another group (a remove
for the old group, an upsert for the new), and when it stops counting. A
table partitioned like that topic keeps one slot per (group, member), so a
group is complete on exactly one partition whatever partitions its members
live on.

Every update carries a version: the offset of the ``hygiene.changes``
message whose handling produced it. One opportunity is always handled on one
partition of that topic, in offset order, and a re-run after a crash handles
the same message again, so versions only grow per member and a repeat
carries the version it had. A slot keeps the highest version it saw (a
removal stays as a small tombstone for a while), so a duplicate or a
reordered old update can never overwrite a newer one.

This module holds no Faust and no clock: the state agent and the group agent
hand it their table and time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, Literal, Protocol

import orjson
from pydantic import Field, TypeAdapter

from processor.stream.routing import Partitioner
from schemas import OpportunityState, Record

Membership = tuple[str, Hashable]
"""(group id, signature): the group an opportunity counts in and a cheap
summary of what its entry depends on. Equal before and after a change: the
entry did not change, nothing is sent (the hot path's common case)."""

Payload = dict[str, Any]


class Membered(Protocol):
    """What memberships read of a state: the whole ``OpportunityState``, or
    the native state agent's light form (``native_state.LightState``), which
    is cheaper to build than a state."""

    @property
    def opportunity_id(self) -> str: ...

    @property
    def fields(self) -> dict[str, Any]: ...

    @property
    def open_alerts(self) -> dict[str, int]: ...

    @property
    def merged_into(self) -> str | None: ...


class Regrouping(Protocol):
    """One use of the mechanism (owner queues; manager rollups later)."""

    topic: str
    fields_read: frozenset[str]
    """Every field ``membership`` reads (besides the state's open alerts and
    merge): the native state agent skips membership for a change to no
    other, so a field missing here would leave an entry stale."""

    renders_from_light: bool
    """``render`` reads no more than ``membership`` does: the native state
    agent renders from the light form then, without parsing the whole
    stored state."""

    def membership(self, state: Membered) -> Membership | None:
        """None: the opportunity has no entry in any group."""

    def render(self, state: Membered, now_ms: int, membership: Membership) -> Payload | None:
        """The entry itself (JSON-ready), computed only when the membership
        changed; None: no entry after all. ``state`` is the whole
        ``OpportunityState`` unless ``renders_from_light``; ``membership``
        is the one just computed for it (a use whose entry is its
        membership need not compute it again)."""


# ---- messages on a regrouped topic ------------------------------------------------


class MemberUpdate(Record):
    member: str
    version: int
    at_ms: int = Field(description="Evaluation time of the update (event or sweep time).")
    payload: Payload | None = Field(description="None: the member left the group.")


class MemberBatch(Record):
    kind: Literal["members"] = "members"
    group: str
    updates: list[MemberUpdate]


class GroupTick(Record):
    """A periodic job for one partition of the group table (a digest run),
    sent by a timer to the partition's owner, because only the agent that
    owns a partition may write its table."""

    kind: Literal["tick"] = "tick"
    at_ms: int
    period: str = Field(description="Which run this is; a partition runs each period once.")


_MESSAGE: TypeAdapter[MemberBatch | GroupTick] = TypeAdapter(
    Annotated[MemberBatch | GroupTick, Field(discriminator="kind")]
)


def decode(raw: bytes) -> MemberBatch | GroupTick:
    return _MESSAGE.validate_json(raw)


def encode_tick(at_ms: int, period: str) -> bytes:
    return orjson.dumps({"kind": "tick", "at_ms": at_ms, "period": period})


# ---- the state side: what to send ---------------------------------------------------


def moves(
    before: Membership | None,
    after: Membership | None,
    render: Callable[[Membership], Payload | None],
) -> list[tuple[str, Payload | None]]:
    """(group, payload or None for a removal) updates turning ``before`` into
    ``after``; ``render(after)`` is called only when something is to be sent."""
    if before == after:
        return []
    payload = render(after) if after is not None else None
    out: list[tuple[str, Payload | None]] = []
    if before is not None and (payload is None or after is None or before[0] != after[0]):
        out.append((before[0], None))
    if after is not None and payload is not None:
        out.append((after[0], payload))
    return out


@dataclass
class Outbox:
    """Collects one handled message's updates, one batch message per
    (topic, group), for the state agent to publish with its other outputs."""

    regroupings: Sequence[Regrouping]
    version: int
    pending: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def before(self, state: OpportunityState | None) -> list[Membership | None]:
        if state is None:
            return [None] * len(self.regroupings)
        remembered = state.memo.memberships
        if remembered is not None and remembered[0] is self.regroupings:
            # Left by ``after`` when this state object was last handled: a
            # state from the worker's cache needs no second computation.
            return list(remembered[1])
        return [r.membership(state) for r in self.regroupings]

    def after(
        self, state: OpportunityState, before: list[Membership | None], now_ms: int
    ) -> None:
        at_ms = max(now_ms, state.high_water_ms)
        memberships = [r.membership(state) for r in self.regroupings]
        self.record(state.opportunity_id, before, memberships, at_ms,
                    lambda regrouping, membership: regrouping.render(state, at_ms, membership))
        state.memo.memberships = (self.regroupings, memberships)

    def record(
        self,
        member: str,
        before: Sequence[Membership | None],
        after: Sequence[Membership | None],
        at_ms: int,
        render: Callable[[Regrouping, Membership], Payload | None],
    ) -> None:
        """The updates turning ``before`` into ``after`` (one membership per
        regrouping); ``render(regrouping, membership)`` is asked only for an
        entry to send (the native processor parses a whole state only then)."""
        for regrouping, old, new in zip(self.regroupings, before, after, strict=True):
            for group, payload in moves(old, new, partial(render, regrouping)):
                self.pending.setdefault((regrouping.topic, group), []).append({
                    "member": member, "version": self.version,
                    "at_ms": at_ms, "payload": payload,
                })

    def messages(self) -> list[tuple[str, bytes, bytes]]:
        return [
            (topic, group.encode(),
             orjson.dumps({"kind": "members", "group": group, "updates": updates}))
            for (topic, group), updates in self.pending.items()
        ]


# ---- the group side: slots in a table partitioned by group --------------------------

_SEP = b"\x1f"
_ASIDE = b"\x00"
"""Keys starting with NUL are a user's own bookkeeping, never slots."""
_MARK = _ASIDE + b"mark\x00"
_TOMBSTONE_END = b'"payload":null}'


def slot_key(group: str, member: str) -> bytes:
    return group.encode() + _SEP + member.encode()


def split_key(key: bytes) -> tuple[str, str] | None:
    """(group, member), or None for a bookkeeping key (``aside_key``)."""
    if key.startswith(_ASIDE):
        return None
    group, _, member = key.partition(_SEP)
    return group.decode(), member.decode()


def aside_key(kind: str, *parts: str) -> bytes:
    """A key in the group table that is not a slot: what a use of the
    mechanism keeps beside its slots (a manager's overrides)."""
    return _ASIDE + kind.encode() + _ASIDE + _SEP.join(p.encode() for p in parts)


def mark_key(partition: int) -> bytes:
    # One per partition: table keys are global, while each partition's
    # agent writes (and recovers) only its own.
    return _MARK + str(partition).encode()


def encode_slot(update: MemberUpdate) -> bytes:
    # "payload" last, so a tombstone is recognizable from its bytes alone.
    return orjson.dumps({"version": update.version, "at_ms": update.at_ms,
                         "payload": update.payload})


def is_tombstone(raw: bytes) -> bool:
    return raw.endswith(_TOMBSTONE_END)


@dataclass(frozen=True)
class Slot:
    version: int
    at_ms: int
    payload: Payload | None


def decode_slot(raw: bytes) -> Slot:
    data = orjson.loads(raw)
    return Slot(data["version"], data["at_ms"], data["payload"])


def accepted(stored: bytes | None, update: MemberUpdate) -> bytes | None:
    """The slot's new bytes, or None when the update is older than what the
    slot holds, or the very same (a duplicate: no write, no changelog
    traffic). An equal version with other content wins: the same change
    handled again after a restart, computed by the newer code or rules."""
    encoded = encode_slot(update)
    if stored is not None:
        held = decode_slot(stored).version
        if update.version < held or (update.version == held and stored == encoded):
            return None
    return encoded


@dataclass
class GroupIndex:
    """Per partition, each group's members (None) and recent removals (when):
    built lazily from the table after a (re)assignment by reading keys and
    only the tombstones' bytes, kept current on writes."""

    partition_of: Partitioner
    groups: dict[int, dict[str, dict[str, int | None]]] = field(default_factory=dict)

    def forget(self) -> None:
        self.groups.clear()

    def for_partition(
        self, partition: int, table_items: Callable[[], Iterable[tuple[bytes, bytes]]]
    ) -> dict[str, dict[str, int | None]]:
        known = self.groups.get(partition)
        if known is None:
            for p in range(self.partition_of.partitions):
                self.groups.setdefault(p, {})
            for key, raw in table_items():
                names = split_key(key)
                if names is None:
                    continue
                group, member = names
                removed = decode_slot(raw).at_ms if is_tombstone(raw) else None
                self.groups[self.partition_of(group)].setdefault(group, {})[member] = removed
            known = self.groups[partition]
        return known

    def set(self, partition: int, group: str, member: str, removed_at: int | None) -> None:
        known = self.groups.get(partition)
        if known is not None:
            known.setdefault(group, {})[member] = removed_at

    def drop(self, partition: int, group: str, member: str) -> None:
        members = self.groups.get(partition, {}).get(group)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self.groups[partition][group]


Table = MutableMapping[bytes, bytes]
Stored = Callable[[str, str, Payload | None, MemberUpdate], None]


class GroupedTable:
    """The group agent's reads and writes of its table (Faust-free, like the
    state processor): slots, the per-partition index, the run marker."""

    def __init__(self, partitions: int) -> None:
        self.index = GroupIndex(Partitioner(partitions))

    def forget(self) -> None:
        """Partitions were revoked: what we know may be stale elsewhere."""
        self.index.forget()

    def _groups(self, partition: int, table: Table) -> dict[str, dict[str, int | None]]:
        return self.index.for_partition(partition, lambda: list(table.items()))

    def apply(
        self, batch: MemberBatch, partition: int, table: Table, on_stored: Stored | None = None
    ) -> int:
        """Stores the batch's updates that are newer than their slots;
        returns how many were stored. ``on_stored(group, member, old, new)``
        hears each stored change of a slot's payload (None: no entry), for a
        use that keeps aggregates over the slots."""
        self._groups(partition, table)
        stored = 0
        for update in batch.updates:
            key = slot_key(batch.group, update.member)
            held = table.get(key)
            value = accepted(held, update)
            if value is None:
                continue
            table[key] = value
            if on_stored is not None:
                old = None if held is None else decode_slot(held).payload
                on_stored(batch.group, update.member, old, update)
            removed = update.at_ms if update.payload is None else None
            self.index.set(partition, batch.group, update.member, removed)
            stored += 1
        return stored

    def groups(self, partition: int, table: Table) -> list[str]:
        """Groups with a member or a recent removal on ``partition``."""
        return sorted(self._groups(partition, table))

    def members(self, group: str, partition: int, table: Table) -> list[Payload]:
        """The current entries of ``group`` (removals left out)."""
        members = self._groups(partition, table).get(group, {})
        found: list[Payload] = []
        for member, removed in members.items():
            if removed is not None:
                continue
            raw = table.get(slot_key(group, member))
            if raw is not None and not is_tombstone(raw):
                payload = decode_slot(raw).payload
                if payload is not None:
                    found.append(payload)
        return found

    def prune(self, partition: int, table: Table, removed_before_ms: int) -> int:
        """Deletes tombstones older than ``removed_before_ms``: by then no
        stale update can still be on its way."""
        pruned = 0
        for group, members in list(self._groups(partition, table).items()):
            for member, removed in list(members.items()):
                if removed is not None and removed < removed_before_ms:
                    del table[slot_key(group, member)]
                    self.index.drop(partition, group, member)
                    pruned += 1
        return pruned

    @staticmethod
    def mark(partition: int, table: Table) -> str | None:
        """The last period this partition's periodic job completed."""
        raw = table.get(mark_key(partition))
        return None if raw is None else raw.decode()

    @staticmethod
    def set_mark(partition: int, table: Table, period: str) -> None:
        table[mark_key(partition)] = period.encode()
