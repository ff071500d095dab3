"""Recorded input files as messages: what replay reads and publish sends."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import orjson

from processor.sources import recorded
from processor.sources.base import Reject

PAYLOADS = Path(__file__).parent / "payloads"


def test_event_lines_go_as_they_are_without_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n  \n{broken\n')
    assert list(recorded.messages(path)) == [(1, b'{"a": 1}'), (4, b"{broken")]


def test_export_rows_are_stamped_with_the_files_name_and_time(tmp_path: Path) -> None:
    path = tmp_path / "nightly.csv"
    shutil.copy(PAYLOADS / "bulk_export.csv", path)
    os.utime(path, (1_780_000_000, 1_780_000_000))
    items = list(recorded.messages(path))

    rows = [(line, orjson.loads(item)) for line, item in items if isinstance(item, bytes)]
    assert {m["export_id"] for _, m in rows} == {"nightly"}
    assert {m["exported_at"] for _, m in rows} == {
        datetime.fromtimestamp(1_780_000_000, UTC).isoformat()}
    assert rows[0] == (2, {"export_id": "nightly", "exported_at": rows[0][1]["exported_at"],
                           "row": rows[0][1]["row"]})
    assert rows[0][1]["row"]["Id"] == "006Dn000004ZKcXIAW"
    rejects = [(line, item.reason) for line, item in items if isinstance(item, Reject)]
    assert rejects == [(6, "schema_violation"), (7, "schema_violation")]


def test_a_json_lines_export_is_one_only_when_named_so(tmp_path: Path) -> None:
    path = tmp_path / "deals.jsonl"
    shutil.copy(PAYLOADS / "bulk_export.jsonl", path)
    at = datetime(2026, 11, 24, 6, tzinfo=UTC)
    as_events = [item for _, item in recorded.messages(path)]
    as_export = [item for _, item in recorded.messages(path, export=True, export_id="e7",
                                                       exported_at=at)]
    assert as_events[1] == (PAYLOADS / "bulk_export.jsonl").read_bytes().splitlines()[1]
    first = orjson.loads(as_export[0])  # type: ignore[arg-type]
    assert (first["export_id"], first["exported_at"]) == ("e7", "2026-11-24T06:00:00+00:00")
    assert [type(i).__name__ for i in as_export] == ["bytes", "bytes", "Reject", "Reject",
                                                    "bytes"]
