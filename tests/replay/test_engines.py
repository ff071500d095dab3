"""The replay runs the native engine; the Python engine is its reference.
Both through the whole runner (batching, exports, dead letters, the final
sweep, the files written): the same outputs, counts and states."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.core.clock import to_ms
from processor.replay.engines import EngineName
from processor.replay.runner import Replay, ReplayResult
from processor.replay.sinks import OUTPUT_FILES, JsonLinesSink
from processor.rules import default_rules
from processor.simulate import simulate
from schemas.state import state_to_json

START = datetime(2026, 3, 1, tzinfo=UTC)
RECEIVED = datetime(2026, 7, 1, tzinfo=UTC)
PAYLOADS = Path(__file__).parent.parent / "sources" / "payloads"


def _run(engine: EngineName, events: Path, export: Path, out: Path, as_of: int,
         batch: int) -> ReplayResult:
    replay = Replay(default_rules(), sink=JsonLinesSink(out), received_at=RECEIVED,
                    engine=engine)
    replay.BATCH = batch
    replay.feed_file(events)
    replay.feed_file(export)
    return replay.finish(as_of)


def _lines(out: Path, kind: str) -> list[Any]:
    return [orjson.loads(line) for line in (out / OUTPUT_FILES[kind]).read_bytes().splitlines()]


@pytest.mark.parametrize("batch", [1, 37, 1024])
def test_native_and_python_replays_write_the_same_files(tmp_path: Path, batch: int) -> None:
    rules = default_rules()
    sim = simulate(opportunities=120, days=60, seed=8, fmt="mixed", start=START, rules=rules)
    events = tmp_path / "events.jsonl"
    bad = [b"{not json", b'{"hello": "world"}', b"[1, 2]"]
    events.write_bytes(b"\n".join([*sim.events[:300], *bad, *sim.events[300:]]))
    export = tmp_path / "nightly.csv"
    shutil.copy(PAYLOADS / "bulk_export.csv", export)
    as_of = to_ms(sim.as_of)

    native = _run("native", events, export, tmp_path / "native", as_of, batch)
    python = _run("python", events, export, tmp_path / "python", as_of, batch)

    for kind in OUTPUT_FILES:
        assert _lines(tmp_path / "native", kind) == _lines(tmp_path / "python", kind), kind
    assert len(_lines(tmp_path / "native", "dead_letters")) >= len(bad)
    counts = ("messages", "changes", "ignored", "alerts_raised", "resolutions",
              "first_event_ms", "last_event_ms", "as_of_ms")
    assert {c: getattr(native, c) for c in counts} == {c: getattr(python, c) for c in counts}
    assert native.alerts == python.alerts and native.history == python.history
    assert native.alerts_raised > 50 and len(native.history) > 200
    assert list(native.states) == list(python.states)
    assert [state_to_json(s) for s in native.states.values()] == \
        [state_to_json(s) for s in python.states.values()]


def test_state_reads_see_what_is_still_pending() -> None:
    """``state`` and ``states`` flush first: a reader (the demo's names)
    never sees a state behind what was fed."""
    rules = default_rules()
    sim = simulate(opportunities=5, days=10, seed=2, fmt="generic", start=START, rules=rules)
    replay = Replay(rules, received_at=RECEIVED)
    replay.feed(sim.events[0], "sim")
    opportunity_id = orjson.loads(sim.events[0])["opportunity_id"]  # a generic event
    assert replay._pending, "fed, not yet applied"
    assert replay.state(opportunity_id) is not None
    assert replay.state("never-seen") is None
