"""``Core.next_due`` against ``Engine.next_due``: the due time the stream
stores with each state (``next_due_ms``), asked of live states (with the
engine's memo of the last evaluation) and of states just loaded (none), at
the states' own time, before it, and days after it."""

from __future__ import annotations

import random

import orjson
import pytest

from processor.core.engine import Engine
from processor.rules.export import native_rules
from schemas import OpportunityState
from schemas.state import state_from_json, state_to_json
from tests.native.test_core_parity import RULES, traffic

hygiene_core = pytest.importorskip("processor.hygiene_core")

DAY = 86_400_000


@pytest.mark.parametrize(("variant", "seed"), [("default", 31), ("new_york", 32)])
def test_next_due_is_the_python_engines(variant: str, seed: int) -> None:
    rules = RULES[variant]
    engine = Engine(rules)
    changes = traffic(rules, seed, "mixed", 150)
    core = hygiene_core.Core(native_rules(rules))
    states: dict[str, OpportunityState] = {}
    rng = random.Random(seed)
    asked = 0
    seen_due = False
    for start in range(0, len(changes), 200):
        chunk = changes[start:start + 200]
        core.apply_batch([orjson.dumps(c.__dict__) for c in chunk])
        for item in chunk:
            states[item.opportunity_id], _ = engine.apply(states.get(item.opportunity_id), item)
        for opportunity_id in {c.opportunity_id for c in chunk}:
            state = states[opportunity_id]
            for now in (0, state.high_water_ms, state.high_water_ms + rng.randrange(1, 60) * DAY):
                expected = engine.next_due(state, now)
                assert core.next_due(opportunity_id, now) == expected, (opportunity_id, now)
                seen_due |= expected is not None
                asked += 1
        if start % 1000 == 0:
            # A sweep moves the memo on; then the same for every state.
            now = max(s.high_water_ms for s in states.values()) + 3 * DAY
            core.sweep_all(now)
            for state in states.values():
                engine.sweep(state, now)
            for opportunity_id, state in states.items():
                assert core.next_due(opportunity_id, now) == engine.next_due(state, now)
    assert seen_due and asked > 1000
    # States read back from storage (no memo), both ways.
    fresh = hygiene_core.Core(native_rules(rules))
    for state in states.values():
        fresh.load_state(state_to_json(state))
    for opportunity_id, state in states.items():
        loaded = state_from_json(state_to_json(state))
        for now in (0, state.high_water_ms + 10 * DAY):
            assert fresh.next_due(opportunity_id, now) == engine.next_due(loaded, now)
    assert core.next_due("no such opportunity", 0) is None


def test_the_stored_next_due_survives_a_load_and_dump() -> None:
    state = OpportunityState(opportunity_id="006A", high_water_ms=5, next_due_ms=123,
                             open_alerts={"r": 1})
    core = hygiene_core.Core(native_rules(RULES["default"]))
    core.load_state(state_to_json(state))
    assert core.dump_state("006A") == state_to_json(state)
