"""The stored form of a state: packed, exact, readable by the published
schema, and still able to load what earlier versions wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import orjson
import pytest

from processor.core.clock import to_ms
from processor.replay.runner import Replay
from processor.rules import default_rules
from processor.simulate import simulate
from schemas import OpportunityState
from schemas.publish import path_for
from schemas.state import state_from_json, state_to_json


@pytest.fixture(scope="module")
def states() -> list[OpportunityState]:
    """Real states: a simulated quarter of mixed-format traffic, replayed."""
    rules = default_rules()
    sim = simulate(opportunities=150, days=90, seed=3, fmt="mixed",
                   start=datetime(2026, 1, 1, tzinfo=UTC), rules=rules)
    replay = Replay(rules, keep=False, received_at=sim.as_of)
    for raw in sim.events:
        replay.feed(raw, "test")
    replay.finish(to_ms(sim.as_of))
    return list(replay.states.values())


def test_round_trip_is_exact(states: list[OpportunityState]) -> None:
    assert any(len(state.timeline) > 5 for state in states)
    for state in states:
        assert state_from_json(state_to_json(state)).model_dump() == state.model_dump()


def test_fast_writer_writes_what_the_model_serializer_writes(
    states: list[OpportunityState],
) -> None:
    for state in states:
        assert orjson.loads(state_to_json(state)) == orjson.loads(
            state.model_dump_json(exclude_defaults=True))


def test_stored_form_validates_against_the_published_schema(
    states: list[OpportunityState],
) -> None:
    schema = json.loads(path_for("opportunity-state").read_text())
    for state in states[:20]:
        jsonschema.validate(orjson.loads(state_to_json(state)), schema)


def test_ids_and_stamps_are_packed() -> None:
    state = OpportunityState(
        opportunity_id="006X",
        fields={"stage": "Discovery", "name": "Acme"},
        stamps={"stage": 5_000_000_000_000_000_123, "name": 4_999_999_999_999_999_000},
        timeline=[
            (5_000_000_000_000_000_000, "hs:1:2:propertyChange:006X:dealstage", {"stage": "A"}),
            (5_000_000_000_000_000_100, "", {"amount": 5.0}),
            (5_000_000_000_000_000_123, "sf-other", {"stage": "Discovery"}),
            (5_000_000_000_000_000_124, "006X", {"stage": "B"}),
        ],
    )
    stored = orjson.loads(state_to_json(state))
    assert stored["timeline"] == {"base": 5_000_000_000_000_000_000, "obs": [
        [0, ["hs:1:2:propertyChange:", ":dealstage"], {"stage": "A"}],
        [100, {"amount": 5.0}],
        [23, "sf-other", {"stage": "Discovery"}],
        [1, ["", ""], {"stage": "B"}],
    ]}
    assert stored["stamps"] == {"123": ["stage"], "-1000": ["name"]}
    assert state_from_json(state_to_json(state)).model_dump() == state.model_dump()


@pytest.mark.parametrize("stamps", [
    {"7000000000000000001": ["stage"], "7000000000000000002": ["name"]},  # grouped
    {"stage": 7000000000000000001, "name": 7000000000000000002},  # the first form
])
def test_earlier_forms_still_load(stamps: dict[str, Any]) -> None:
    legacy = {
        "opportunity_id": "006L",
        "fields": {"stage": "Discovery", "name": "Acme"},
        "stamps": stamps,
        "timeline": [[7000000000000000001, "ev-1:006L", {"stage": "Discovery"}]],
    }
    state = state_from_json(orjson.dumps(legacy))
    assert state.stamps == {"stage": 7000000000000000001, "name": 7000000000000000002}
    assert state.timeline == [(7000000000000000001, "ev-1:006L", {"stage": "Discovery"})]
    assert state_from_json(state_to_json(state)).model_dump() == state.model_dump()
