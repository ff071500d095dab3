"""Each regrouping's ``fields_read`` names every field its membership reads:
the native state agent computes no membership for a change to any other
field, so a field missing from it would leave an owner-queue or rollup
entry stale. Checked by changing every other field of real states. And a
regrouping that ``renders_from_light`` renders the same entry from a state
holding only those fields (what the native agent renders from)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from processor.alerts.owner_queue import OwnerQueueRegrouping
from processor.core.engine import Engine
from processor.forecast.entry import RollupRegrouping
from processor.forecast.fiscal import FiscalCalendar
from processor.replay.runner import Replay
from processor.rules import default_rules
from processor.simulate import simulate
from processor.stream.regroup import Regrouping
from schemas import OpportunityState

ODD_VALUES = ("", "x", 0, 1.5, True, None, "2026-02-30", "Closed Won")


def regrouping_and_states(which: str) -> tuple[Regrouping, list[OpportunityState]]:
    rules = default_rules()
    regrouping: Regrouping = (
        OwnerQueueRegrouping(Engine(rules), "t") if which == "owner_queue"
        else RollupRegrouping(rules, FiscalCalendar(2), "t"))
    sim = simulate(opportunities=60, days=60, seed=9, fmt="mixed",
                   start=datetime(2026, 1, 1, tzinfo=UTC), rules=rules)
    replay = Replay(rules, received_at=datetime(2026, 6, 1, tzinfo=UTC))
    for raw in sim.events:
        replay.feed(raw, "sim")
    return regrouping, list(replay.finish().states.values())


@pytest.mark.parametrize("which", ["owner_queue", "rollup"])
def test_fields_outside_fields_read_never_move_a_membership(which: str) -> None:
    regrouping, states = regrouping_and_states(which)
    names = {name for state in states for name in state.fields} | {"next_step", "probability"}
    outside = sorted(names - regrouping.fields_read)
    assert outside, "the traffic has fields no membership reads"
    counted = 0
    for state in states:
        before = regrouping.membership(state)
        counted += before is not None
        for name in outside:
            for value in ODD_VALUES:
                changed = state.model_copy(update={"fields": {**state.fields, name: value}})
                assert regrouping.membership(changed) == before, (name, value)
    assert counted > 10


def test_the_rollup_renders_the_same_entries_from_its_fields_alone() -> None:
    regrouping, states = regrouping_and_states("rollup")
    assert regrouping.renders_from_light
    rendered = 0
    for state in states:
        light = state.model_copy(update={"fields": {
            name: value for name, value in state.fields.items()
            if name in regrouping.fields_read}})
        membership = regrouping.membership(state)
        if membership is None:
            assert regrouping.membership(light) is None
            continue
        whole = regrouping.render(state, state.high_water_ms, membership)
        assert regrouping.render(light, 0, regrouping.membership(light)) == whole
        # Its membership is its entry: rendered from the whole state's, the same.
        assert regrouping.render(light, 0, membership) == whole
        rendered += whole is not None
    assert rendered > 10
