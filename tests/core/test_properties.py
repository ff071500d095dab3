"""Property tests: redelivery and delivery order cannot change the result."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.engine import Engine
from processor.rules import default_rules
from processor.rules.checks import next_due
from schemas import OpportunityChange, OpportunityState, StageHistoryRecord
from tests.strategies import histories

ENGINE = Engine(default_rules())


def run(events: list[OpportunityChange]) -> tuple[OpportunityState, list[StageHistoryRecord]]:
    state = None
    records: list[StageHistoryRecord] = []
    for event in events:
        state, outcome = ENGINE.apply(state, event)
        records.extend(outcome.history)
    assert state is not None
    return state, records


def final_history(records: list[StageHistoryRecord]) -> list[dict[str, Any]]:
    """What a warehouse holds after upserting every record on its id."""
    latest = {r.record_id: r for r in records}
    return sorted((r.model_dump(mode="json") for r in latest.values() if not r.retracted),
                  key=lambda r: r["record_id"])


def comparable(state: OpportunityState) -> dict[str, Any]:
    # When an alert opened depends on when the engine first saw the condition,
    # which delivery order legitimately changes; which alerts are open does not.
    data = state.model_dump()
    data["open_alerts"] = sorted(state.open_alerts)
    data["stamps"] = dict(state.stamps)  # the serialized grouping follows insertion order
    return data


SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(histories(), st.data())
def test_any_delivery_order_ends_in_the_same_state_and_history(
    events: list[OpportunityChange], data: st.DataObject
) -> None:
    state, records = run(events)
    shuffled = data.draw(st.permutations(events))
    other_state, other_records = run(shuffled)
    assert comparable(other_state) == comparable(state)
    assert final_history(other_records) == final_history(records)


@SETTINGS
@given(histories(), st.data())
def test_replaying_any_event_twice_changes_nothing(
    events: list[OpportunityChange], data: st.DataObject
) -> None:
    state, _ = run(events)
    before = state.model_dump()
    again = data.draw(st.sampled_from(events))
    state, outcome = ENGINE.apply(state, again)
    assert not outcome.changed
    assert not outcome.alerts and not outcome.history and not outcome.commands
    assert state.model_dump() == before


@SETTINGS
@given(histories(), st.data())
def test_duplicated_deliveries_in_any_order_match_a_clean_run(
    events: list[OpportunityChange], data: st.DataObject
) -> None:
    state, records = run(events)
    duplicated = events + data.draw(st.lists(st.sampled_from(events), max_size=6))
    other_state, other_records = run(data.draw(st.permutations(duplicated)))
    assert comparable(other_state) == comparable(state)
    assert final_history(other_records) == final_history(records)


@SETTINGS
@given(histories(), st.integers(0, 2400), st.integers(0, 2400))
def test_nothing_changes_before_the_next_due_time(
    events: list[OpportunityChange], later_a: int, later_b: int
) -> None:
    """A sweep may skip an opportunity until its due time: evaluating at any
    moment before it gives the same conditions as evaluating right now."""
    state, _ = run(events)
    now = state.high_water_ms
    due = ENGINE.next_due(state, now)
    found_now = set(ENGINE.findings(state, now))
    for offset_hours in (later_a, later_b):
        moment = now + offset_hours * 3_600_000
        if due is None or moment < due:
            assert set(ENGINE.findings(state, moment)) == found_now


@SETTINGS
@given(histories(), st.data())
def test_incremental_evaluation_always_matches_a_full_one(
    events: list[OpportunityChange], data: st.DataObject
) -> None:
    """The engine re-runs only the checks whose inputs changed (and the time
    checks once due): after every event and every sweep, in any order, with
    the in-memory caches lost at random (a state read back from the table),
    the open alerts must be exactly what a full evaluation finds."""
    state: OpportunityState | None = None
    for event in data.draw(st.permutations(events)):
        state, _ = ENGINE.apply(state, event)
        assert set(state.open_alerts) == set(ENGINE.findings(state, state.high_water_ms))
        if data.draw(st.booleans()):
            moment = state.high_water_ms + data.draw(st.integers(0, 2400)) * 3_600_000
            ENGINE.sweep(state, moment)
            assert set(state.open_alerts) == set(ENGINE.findings(state, moment))
            assert ENGINE.next_due(state, moment) == next_due(state, ENGINE.rules, moment)
        if data.draw(st.integers(0, 5)) == 0:
            state = OpportunityState.model_validate_json(state.model_dump_json())
