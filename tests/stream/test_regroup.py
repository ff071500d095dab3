"""The regrouping mechanism on its own: which updates a membership change
sends, which updates a slot accepts, and the group table's index."""

from __future__ import annotations

import random
from typing import Any

from processor.stream import regroup
from processor.stream.regroup import (
    GroupedTable,
    MemberBatch,
    MemberUpdate,
    accepted,
    encode_slot,
    is_tombstone,
    mark_key,
    moves,
    slot_key,
)
from processor.stream.routing import Partitioner

PARTITIONS = 4


def rendered(payload: dict[str, Any] | None) -> Any:
    calls: list[int] = []

    def render(membership: Any) -> dict[str, Any] | None:
        assert membership is not None, "rendered only for a membership"
        calls.append(1)
        return payload

    render.calls = calls  # type: ignore[attr-defined]
    return render


# ---- moves ------------------------------------------------------------------------


def test_an_unchanged_membership_sends_nothing_and_renders_nothing() -> None:
    render = rendered({"x": 1})
    assert moves(("u1", (1, 2)), ("u1", (1, 2)), render) == []
    assert moves(None, None, render) == []
    assert render.calls == []


def test_joining_changing_leaving_and_moving() -> None:
    entry = {"amount": 5}
    assert moves(None, ("u1", 1), rendered(entry)) == [("u1", entry)]
    assert moves(("u1", 1), ("u1", 2), rendered(entry)) == [("u1", entry)]
    assert moves(("u1", 1), None, rendered(entry)) == [("u1", None)]
    # A move: out of the old group, into the new one.
    assert moves(("u1", 1), ("u2", 1), rendered(entry)) == [("u1", None), ("u2", entry)]
    # Nothing to render after all: only the removal.
    assert moves(("u1", 1), ("u1", 2), rendered(None)) == [("u1", None)]
    assert moves(None, ("u1", 2), rendered(None)) == []


# ---- slots ------------------------------------------------------------------------


def update(version: int, payload: dict[str, Any] | None, at_ms: int = 0) -> MemberUpdate:
    return MemberUpdate(member="opp", version=version, at_ms=at_ms, payload=payload)


def test_a_slot_never_goes_back_to_an_older_version() -> None:
    v5 = encode_slot(update(5, {"a": 1}))
    assert accepted(None, update(5, {"a": 1})) == v5
    assert accepted(v5, update(4, {"a": 0})) is None  # older
    assert accepted(v5, update(5, {"a": 1})) is None  # duplicate: no write
    assert accepted(v5, update(6, {"a": 2})) == encode_slot(update(6, {"a": 2}))
    # The same change handled again by newer code: the later computation wins.
    assert accepted(v5, update(5, {"a": 9})) == encode_slot(update(5, {"a": 9}))


def test_a_removal_is_a_tombstone_that_blocks_a_stale_add() -> None:
    removed = accepted(encode_slot(update(5, {"a": 1})), update(7, None, at_ms=100))
    assert removed is not None and is_tombstone(removed)
    assert not is_tombstone(encode_slot(update(7, {"payload": None})))
    assert accepted(removed, update(6, {"a": 1})) is None
    assert accepted(removed, update(8, {"a": 3})) is not None


# ---- the group table ---------------------------------------------------------------


def batch(group: str, *updates: tuple[str, int, dict[str, Any] | None]) -> MemberBatch:
    raw = regroup.Outbox([], 0)
    raw.pending[("t", group)] = [{"member": m, "version": v, "at_ms": v * 10, "payload": p}
                                 for m, v, p in updates]
    ((_, key, value),) = raw.messages()
    assert key == group.encode()
    decoded = regroup.decode(value)
    assert isinstance(decoded, MemberBatch)
    return decoded


def test_the_table_holds_each_groups_current_members() -> None:
    partition_of = Partitioner(PARTITIONS)
    table: dict[bytes, bytes] = {}
    store = GroupedTable(PARTITIONS)
    p1 = partition_of("u1")
    assert store.apply(batch("u1", ("a", 1, {"n": "a"}), ("b", 1, {"n": "b"})), p1, table) == 2
    assert store.apply(batch("u1", ("a", 2, None)), p1, table) == 1
    assert store.apply(batch("u1", ("a", 1, {"n": "a"})), p1, table) == 0  # stale redelivery
    assert store.members("u1", p1, table) == [{"n": "b"}]
    assert store.groups(p1, table) == ["u1"]

    # After a revocation the index comes back from the table alone.
    store.forget()
    assert store.members("u1", p1, table) == [{"n": "b"}]
    assert store.groups(p1, table) == ["u1"]
    other = next(p for p in range(PARTITIONS) if p != p1)
    assert store.groups(other, table) == []


def test_prune_forgets_old_tombstones_only() -> None:
    partition_of = Partitioner(PARTITIONS)
    table: dict[bytes, bytes] = {}
    store = GroupedTable(PARTITIONS)
    p = partition_of("u1")
    store.apply(batch("u1", ("a", 1, {"n": "a"}), ("b", 2, None), ("c", 9, None)), p, table)
    assert store.prune(p, table, removed_before_ms=50) == 1  # b at 20; c at 90 stays
    assert slot_key("u1", "b") not in table and slot_key("u1", "c") in table
    assert store.groups(p, table) == ["u1"]
    store.prune(p, table, removed_before_ms=1000)
    store.apply(batch("u1", ("a", 3, None)), p, table)
    store.prune(p, table, removed_before_ms=1000)
    assert store.groups(p, table) == []
    assert table == {}


def test_marks_are_per_partition_and_not_members() -> None:
    table: dict[bytes, bytes] = {}
    store = GroupedTable(PARTITIONS)
    store.set_mark(0, table, "2026-03-09")
    assert store.mark(0, table) == "2026-03-09" and store.mark(1, table) is None
    assert mark_key(0) != mark_key(1)
    store.forget()
    assert all(store.groups(p, table) == [] for p in range(PARTITIONS))


def test_shuffled_duplicated_delivery_ends_like_in_order() -> None:
    rng = random.Random(11)
    partition_of = Partitioner(PARTITIONS)
    history: list[MemberBatch] = []
    for version in range(1, 60):
        member = f"opp{rng.randrange(6)}"
        payload = None if rng.random() < 0.3 else {"v": version}
        history.append(batch("u1", (member, version, payload)))
    p = partition_of("u1")

    def final(order: list[MemberBatch]) -> dict[bytes, bytes]:
        table: dict[bytes, bytes] = {}
        store = GroupedTable(PARTITIONS)
        for message in order:
            store.apply(message, p, table)
        return table

    shuffled = history + rng.sample(history, 20)
    rng.shuffle(shuffled)
    assert final(shuffled) == final(history)
