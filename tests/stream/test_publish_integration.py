"""``hygiene publish`` through a real broker: recorded event files and bulk
exports published to the input topic end, in a worker, exactly where their
offline replay does, dead letters included."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.replay.runner import Replay
from processor.rules import RuleSet
from processor.simulate import simulate

from .conftest import NewStream, NewWorker
from .support import Kafka, assert_same_as_replay, dead_letters, drain

pytestmark = pytest.mark.integration

PAYLOADS = Path(__file__).parent.parent / "sources" / "payloads"


def test_published_files_end_where_their_replay_does(
    tmp_path: Path, rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    sim = simulate(opportunities=30, days=40, seed=5, fmt="mixed",
                   start=datetime(2026, 2, 2, tzinfo=UTC), rules=rules)
    events = tmp_path / "events.jsonl"
    # A blank line is skipped; a broken line is the stream's to dead-letter.
    events.write_bytes(b"\n".join([*sim.events[:200], b"", b"{not json", *sim.events[200:]]))
    csv_export = tmp_path / "nightly.csv"  # two rows the CSV reader cannot give
    shutil.copy(PAYLOADS / "bulk_export.csv", csv_export)
    jsonl_export = tmp_path / "hubspot-deals.jsonl"
    shutil.copy(PAYLOADS / "bulk_export.jsonl", jsonl_export)

    oracle = Replay(rules, received_at=datetime.now(UTC))
    oracle.feed_file(events)
    oracle.feed_file(csv_export)
    oracle.feed_file(jsonl_export, export=True)
    expected_reasons = Counter(d.reason for d in oracle.result.dead_letters)
    assert expected_reasons["malformed_json"] == 2  # the event line and an export line
    assert expected_reasons["schema_violation"] >= 2

    stream = new_stream()
    worker = new_worker("worker", stream).start().wait_ready()
    with stream.environment():
        result = CliRunner().invoke(
            main, ["publish", str(events), str(csv_export), "--export", str(jsonl_export)])
    assert result.exit_code == 0, result.output
    drain(stream, kafka, worker)
    rows = kafka.count(stream.input) - len(sim.events) - 1
    assert f"published {len(sim.events) + 1} events and {rows} export rows from 2 exports" \
        in result.output

    assert_same_as_replay(kafka, stream, oracle.result)
    published = dead_letters(kafka.read(stream.dead_letter))
    assert Counter(d.reason for d in published) == expected_reasons
    # Where both keep the same original (event lines, rows the file could not
    # give), they say the same; a row refused on its values keeps its Kafka
    # form in the stream and its file line in replay.
    by_origin = {d.original_value(): d for d in published}
    same = [(letter.reason, by_origin[letter.original_value()].error == letter.error)
            for letter in oracle.result.dead_letters if letter.original_value() in by_origin]
    assert sorted(same) == [("malformed_json", True), ("malformed_json", True),
                            ("schema_violation", True), ("schema_violation", True),
                            ("schema_violation", True)]


def test_publish_refuses_an_export_id_for_several_exports(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (first, second):
        shutil.copy(PAYLOADS / "bulk_export.csv", path)
    result = CliRunner().invoke(main, ["publish", str(first), str(second),
                                       "--export-id", "x"])
    assert result.exit_code == 2
    assert "--export-id names one export" in result.output


def test_export_rows_travel_keyed_by_opportunity_and_stamped(
    tmp_path: Path, kafka: Kafka, new_stream: NewStream
) -> None:
    export = tmp_path / "deals.jsonl"
    shutil.copy(PAYLOADS / "bulk_export.jsonl", export)
    stream = new_stream()
    stream.create_topics(kafka)
    with stream.environment():
        result = CliRunner().invoke(main, [
            "publish", "--export", str(export), "--export-id", "crm-2026-11-24",
            "--exported-at", "2026-11-24T06:00:00Z"])
    assert result.exit_code == 0, result.output
    records = kafka.read(stream.input)
    messages = [orjson.loads(r.value) for r in records]
    assert {m["export_id"] for m in messages} == {"crm-2026-11-24"}
    assert {m["exported_at"] for m in messages} == {"2026-11-24T06:00:00+00:00"}
    # In file order on one partition; the two lines that are no JSON object
    # went to the dead-letter topic.
    assert [m["row"].get("id") or m["row"].get("opportunity_id") or m["row"]["hs_object_id"]
            for m in messages] == ["18420399216", "deal-4411", 18420399300]
    assert {(r.partition, r.key) for r in records} == {(records[0].partition, b"deals.jsonl")}
    assert sorted(d.reason for d in dead_letters(kafka.read(stream.dead_letter))) == [
        "malformed_json", "schema_violation"]
