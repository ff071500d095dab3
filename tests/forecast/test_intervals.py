"""The warehouse contract: stage intervals rebuilt from the published
stage-history records equal the intervals of the CRM history itself, however
the stream delivered the events (late, twice, out of order)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.clock import order_stamp, to_ms
from processor.core.engine import Engine
from processor.forecast.intervals import Interval, rebuild
from processor.rules import default_rules
from schemas import OpportunityChange, StageHistoryRecord
from tests.builders import change
from tests.strategies import histories

RULES = default_rules()
ENGINE = Engine(RULES)


def published(events: list[OpportunityChange]) -> list[StageHistoryRecord]:
    """Every record the engine publishes, in publication order, as a topic
    holds them."""
    states = {}
    records: list[StageHistoryRecord] = []
    for event in events:
        state, outcome = ENGINE.apply(states.get(event.opportunity_id), event)
        states[event.opportunity_id] = state
        records.extend(outcome.history)
    return records


def direct(events: list[OpportunityChange]) -> dict[str, list[Interval]]:
    """The intervals a dbt model would build from the CRM's own field history:
    each distinct event once, in event order; an interval per stay in a
    (canonical) stage, ended by the next stage or a deletion."""
    unique = {e.event_id: e for e in events}.values()
    ordered = sorted(unique, key=lambda e: (order_stamp(to_ms(e.occurred_at), e.sequence,
                                                         e.event_id), e.event_id))
    out: dict[str, list[Interval]] = {}
    for opportunity_id in {e.opportunity_id for e in ordered}:
        values: dict[str, object] = {}
        deleted = False
        intervals: list[Interval] = []
        current: tuple[str, int] | None = None
        for event in (e for e in ordered if e.opportunity_id == opportunity_id):
            at = to_ms(event.occurred_at)
            if event.op in ("upsert", "restore"):
                values.update(event.fields)
                values.update(dict.fromkeys(event.nulled_fields))
                if event.op == "restore":
                    deleted = False
            elif event.op in ("delete", "merge"):
                deleted = True
            raw_pipeline = values.get("pipeline")
            raw_stage = values.get("stage")
            pipeline = RULES.pipeline_for(raw_pipeline if isinstance(raw_pipeline, str) else None)
            stage = pipeline.canonical_stage(raw_stage if isinstance(raw_stage, str) else None)
            now_in = None if deleted or stage is None else stage
            if current is not None and current[0] != now_in:
                intervals.append(Interval(opportunity_id, current[0], current[1], at))
                current = None
            if current is None and now_in is not None:
                current = (now_in, at)
        if current is not None:
            intervals.append(Interval(opportunity_id, current[0], current[1], None))
        out[opportunity_id] = intervals
    return {k: v for k, v in out.items() if v}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(opp="006A"), histories(opp="006B"), st.data())
def test_intervals_rebuilt_from_records_equal_the_crm_history(
    first: list[OpportunityChange], second: list[OpportunityChange], data: st.DataObject
) -> None:
    events = first + second
    delivered = data.draw(st.permutations(
        events + data.draw(st.lists(st.sampled_from(events), max_size=8))))
    assert {k: v for k, v in rebuild(published(delivered)).items() if v} == direct(events)


def test_a_late_event_moves_the_interval_boundaries_in_the_warehouse() -> None:
    events = [change(0, stage="Prospecting", event_id="a"),
              change(10, stage="Solution", event_id="c"),
              change(4, stage="Discovery", event_id="b")]  # arrives last, happened second
    intervals = rebuild(published(events))["006A"]
    assert [(i.stage, i.seconds) for i in intervals] == [
        ("Prospecting", 4 * 86400), ("Discovery", 6 * 86400), ("Solution", None)]


def test_category_changes_do_not_split_an_interval() -> None:
    events = [change(0, stage="Discovery", event_id="a"),
              change(1, forecast_category="Best Case", event_id="b"),
              change(3, stage="Solution", event_id="c")]
    records = published(events)
    assert "category_changed" in [r.transition for r in records]
    assert [(i.stage, i.seconds) for i in rebuild(records)["006A"]] == [
        ("Discovery", 3 * 86400), ("Solution", None)]
