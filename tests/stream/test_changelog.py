"""A message handler's view of a table with its writes held back
(``PendingWrites``) and the plain-mapping persist. The Faust-backed persist
is exercised through real workers: restart and SIGKILL recovery in
``test_stream_integration``, group tables in the owner-queue and rollup
integration tests."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import faust
import pytest

from processor.stream.changelog import PendingWrites, write_mapping, write_store


def test_reads_see_the_handlers_own_writes_and_deletes() -> None:
    table = {b"a": b"1", b"b": b"2"}
    pending = PendingWrites(table)
    pending[b"c"] = b"3"
    pending[b"a"] = b"1'"
    del pending[b"b"]

    assert pending.get(b"a") == b"1'" and pending[b"c"] == b"3"
    assert pending.get(b"b") is None and pending.get(b"b", b"x") == b"x"
    assert b"b" not in pending
    with pytest.raises(KeyError):
        pending[b"b"]
    with pytest.raises(KeyError):
        del pending[b"zz"]
    assert dict(pending.items()) == {b"a": b"1'", b"c": b"3"}
    assert sorted(pending) == [b"a", b"c"] and len(pending) == 2
    assert table == {b"a": b"1", b"b": b"2"}, "the table itself is untouched until persisted"


def test_persisting_applies_writes_and_deletes() -> None:
    table = {b"a": b"1", b"b": b"2"}
    pending = PendingWrites(table)
    pending[b"a"] = b"new"
    del pending[b"b"]
    pending[b"c"] = b"3"
    asyncio.run(write_mapping(table, pending.writes, 0))
    assert table == {b"a": b"new", b"c": b"3"}


def test_a_key_written_then_deleted_is_deleted() -> None:
    table = {b"a": b"1"}
    pending = PendingWrites(table)
    pending[b"n"] = b"x"
    del pending[b"n"]
    del pending[b"a"]
    assert dict(pending.items()) == {}
    asyncio.run(write_mapping(table, pending.writes, 0))
    assert table == {}


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_faust_store_gets_a_batch_of_writes_and_deletes(store: str, tmp_path: Path) -> None:
    app = faust.App(f"t-changelog-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1",
                    store=store, datadir=str(tmp_path), autodiscover=False)
    table = app.Table("states", partitions=2, key_type=bytes, value_type=bytes)
    table.key_serializer = "raw"  # type: ignore[attr-defined]
    table.value_serializer = "raw"  # type: ignore[attr-defined]
    data: Any = table.data
    write_store(data, {b"a": b"1", b"b": b"2", b"c": b"3"}, 1)
    write_store(data, {b"a": b"1'", b"c": None}, 1)
    assert {key: data[key] for key in (b"a", b"b")} == {b"a": b"1'", b"b": b"2"}
    assert b"c" not in data
    if store == "rocksdb://":  # in the partition's own database, as recovery writes it
        assert data._db_for_partition(1).get(b"b") == b"2"
        assert data._db_for_partition(0).get(b"b") is None
