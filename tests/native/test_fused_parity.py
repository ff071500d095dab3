"""``Core.feed_many`` (decode and apply in one call, no change JSON between)
against the two steps it replaces: ``Decoder.decode_many`` then
``Core.apply_batch`` on the changes' JSON. Those two are each held to the
Python reference (``test_decode_parity``, ``test_core_parity``), so equal
here means equal to the reference: same records in the same order, same
ignored counts, same rejects (reason and text, per message), same states."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from processor.rules import default_rules
from processor.rules.export import native_rules
from processor.sources.export import native_mappings

from .test_decode_parity import (
    BASES,
    MAPPINGS,
    breakages,
    hand_written,
    payload_messages,
    simulated,
    value_corpus,
)

hygiene_core = pytest.importorskip("processor.hygiene_core")
hygiene_decode = pytest.importorskip("processor.hygiene_decode")


def two_steps(raws: list[bytes], which: str) -> tuple[Any, ...]:
    decoder = hygiene_decode.Decoder(native_mappings(MAPPINGS[which]))
    core = hygiene_core.Core(native_rules(default_rules()))
    records: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
    ignored, applied = 0, 0
    dead: list[tuple[int, str, str]] = []
    for index, (changes, skipped, rejects) in enumerate(decoder.decode_many(raws)):
        ignored += skipped
        dead.extend((index, reason, error) for reason, error in rejects)
        for kind, out in zip(records, core.apply_batch(changes), strict=True):
            kind.extend(out)
        failed = core.take_rejects()
        dead.extend((index, "processing_error", error) for _, error in failed)
        applied += len(changes) - len(failed)
    return (*records, ignored, applied, dead), states(core)


def fused(raws: list[bytes], which: str, batch: int) -> tuple[Any, ...]:
    core = hygiene_core.Core(native_rules(default_rules()))
    core.attach_decoder(native_mappings(MAPPINGS[which]), 1_048_576)
    records: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
    ignored, applied = 0, 0
    dead: list[tuple[int, str, str]] = []
    for start in range(0, len(raws), batch):
        alerts, history, commands, skipped, count, rejects = core.feed_many(
            raws[start:start + batch])
        for kind, out in zip(records, (alerts, history, commands), strict=True):
            kind.extend(out)
        ignored += skipped
        applied += count
        dead.extend((start + index, reason, error) for index, reason, error in rejects)
    return (*records, ignored, applied, dead), states(core)


def states(core: Any) -> list[bytes]:
    return [core.dump_state(opportunity_id) for opportunity_id in core.ids()]


def assert_same(raws: list[bytes], which: str = "default", batch: int = 256) -> None:
    assert fused(raws, which, batch) == two_steps(raws, which)


@pytest.mark.parametrize("which", sorted(MAPPINGS))
@pytest.mark.parametrize("fmt", ["salesforce", "hubspot", "generic", "mixed"])
def test_simulated_traffic(fmt: str, which: str) -> None:
    raws = simulated(fmt, 1)
    assert_same(raws, which)
    outputs, _ = fused(raws, which, 256)
    assert len(outputs[1]) > 100 and outputs[4] > 1000  # history records, changes applied


@pytest.mark.parametrize("which", sorted(MAPPINGS))
def test_odd_inputs(which: str) -> None:
    """Recorded vendor payloads, hand-written oddities, odd values of every
    type, every key of every base broken every way: rejects and all."""
    raws = [*payload_messages(), *hand_written(), *value_corpus()]
    for base in BASES:
        raws += [orjson.dumps(base), *(orjson.dumps(b) for b in breakages(base))]
    assert_same(raws, which, batch=97)
    outputs, _ = fused(raws, which, 97)
    assert outputs[-1], "the corpus has rejects"


def test_a_sequence_that_is_not_an_i64_is_refused_as_the_json_path_refuses_it() -> None:
    def event(event_id: str, sequence: bytes) -> bytes:
        return (b'{"event_id":"' + event_id.encode() + b'","source":"generic:t",'
                b'"opportunity_id":"o1","occurred_at":"2026-01-02T03:04:05Z",'
                b'"op":"upsert","sequence":' + sequence
                + b',"fields":{"stage":"Discovery"}}')

    # The decoders refuse 2.5; 2**63 passes them (a Python int) but not the engine.
    raws = [event("e1", b"2.5"), event("e2", str(2**63).encode()), event("e3", b"7")]
    assert_same(raws)
    outputs, _ = fused(raws, "default", 8)
    assert outputs[4] == 1
    assert [(index, reason) for index, reason, _ in outputs[5]] == [
        (0, "schema_violation"), (1, "processing_error")]


def test_feed_many_needs_the_decoder() -> None:
    core = hygiene_core.Core(native_rules(default_rules()))
    with pytest.raises(ValueError, match="attach_decoder"):
        core.feed_many([b"{}"])
