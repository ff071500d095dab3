"""The native core (``native/core``, module ``hygiene_core``) against the
Python engine, the reference: the same changes in, the same records out, in
the same order, byte-for-byte equal as JSON values (float stays float).

Skipped only when the extension is not built (``maturin develop``)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import yaml
from pydantic import BaseModel

from processor import hygiene_core  # built with the package: never skipped
from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.core.outcome import Outcome
from processor.hygiene_core import Core
from processor.rules.config import DEFAULT_RULES_PATH, RuleSet, parse_rules
from processor.rules.export import native_rules
from processor.simulate import simulate
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings
from schemas import OpportunityChange, OpportunityState
from schemas.state import state_from_json, state_to_json
from tests.builders import HEALTHY_DISCOVERY, HEALTHY_NEGOTIATION, change, ms
from tests.core.test_engine import ONE_INPUT_CASES

START = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 256

Step = OpportunityChange | int
"""A change to apply, or a sweep of every state at that epoch millisecond."""


def rules_variant(**changes: Any) -> RuleSet:
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    for path, value in changes.items():
        node = data
        *parents, last = path.split("__")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return parse_rules(data, "variant")


RULES = {
    "default": rules_variant(),
    "new_york": rules_variant(timezone="America/New_York"),
    "disabled": rules_variant(pipelines__0__disabled_rules=["stale_close_out", "stage_skipped"],
                              pipelines__1__disabled_rules=["next_step_missing"]),
    "managers": rules_variant(timezone="Asia/Kolkata",
                              owner_managers={"005OWNER1": "005MGR9", "u-1": "m-1"}),
}


class Streams:
    def __init__(self) -> None:
        self.alerts: list[Any] = []
        self.history: list[Any] = []
        self.commands: list[Any] = []

    def add(self, alerts: Sequence[Any], history: Sequence[Any], commands: Sequence[Any]) -> None:
        self.alerts.extend(alerts)
        self.history.extend(history)
        self.commands.extend(commands)

    def add_outcome(self, outcome: Outcome) -> None:
        self.add(outcome.alerts, outcome.history, outcome.commands)


def python_run(rules: RuleSet, steps: Sequence[Step]) -> Streams:
    engine = Engine(rules)
    states: dict[str, OpportunityState] = {}
    out = Streams()
    for step in steps:
        if isinstance(step, int):
            for state in states.values():
                out.add_outcome(engine.sweep(state, step))
            continue
        state, outcome = engine.apply(states.get(step.opportunity_id), step)
        states[step.opportunity_id] = state
        out.add_outcome(outcome)
    return out


def native_run(rules: RuleSet, steps: Sequence[Step]) -> Streams:
    core = hygiene_core.Core(native_rules(rules))
    out = Streams()
    pending: list[bytes] = []

    def flush() -> None:
        if pending:
            out.add(*core.apply_batch(pending))
            pending.clear()

    for step in steps:
        if isinstance(step, int):
            flush()
            out.add(*core.sweep_all(step))
            continue
        pending.append(step.to_json())
        if len(pending) >= BATCH:
            flush()
    flush()
    return out


def _strict(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def assert_same(python: Streams, native: Streams) -> None:
    for name in ("alerts", "history", "commands"):
        expected: list[BaseModel] = getattr(python, name)
        got: list[bytes] = getattr(native, name)
        for index, (record, raw) in enumerate(zip(expected, got, strict=False)):
            want = record.model_dump(mode="json")
            have = orjson.loads(raw)
            assert have == want and _strict(have) == _strict(want), (
                f"{name}[{index}] differs:\n python {_strict(want)!r}\n native {_strict(have)!r}")
        assert len(got) == len(expected), f"{name}: {len(got)} native, {len(expected)} python"


def check(rules: RuleSet, steps: Sequence[Step]) -> Streams:
    python = python_run(rules, steps)
    assert_same(python, native_run(rules, steps))
    return python


# ---- simulated traffic ---------------------------------------------------------

def traffic(rules: RuleSet, seed: int, fmt: str, opportunities: int) -> list[OpportunityChange]:
    sim = simulate(opportunities=opportunities, days=90, seed=seed, fmt=fmt,  # type: ignore[arg-type]
                   start=START, rules=rules)
    mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))
    changes: list[OpportunityChange] = []
    for raw in sim.events:
        changes.extend(decode(raw, mappings).changes)
    return changes


def with_final_sweep(changes: list[OpportunityChange]) -> list[Step]:
    """As the replay finishes: a sweep at the last event time."""
    last = max(to_ms(c.occurred_at) for c in changes)
    return [*changes, last]


@pytest.mark.parametrize(("seed", "fmt"), [
    (1, "mixed"), (2, "mixed"), (3, "salesforce"), (4, "hubspot"), (5, "generic"),
])
def test_simulated_traffic_gives_identical_records(seed: int, fmt: str) -> None:
    rules = RULES["default"]
    python = check(rules, with_final_sweep(traffic(rules, seed, fmt, 400)))
    assert python.alerts and python.history and python.commands  # the comparison saw all three


@pytest.mark.parametrize("variant", ["new_york", "disabled", "managers"])
def test_rule_set_variants_give_identical_records(variant: str) -> None:
    rules = RULES[variant]
    check(rules, with_final_sweep(traffic(rules, 7, "mixed", 400)))


@pytest.mark.parametrize("variant", ["default", "new_york"])
def test_shuffled_and_redelivered_traffic_gives_identical_records(variant: str) -> None:
    """Out-of-order and duplicate delivery exercise the timeline inserts, the
    republished and retracted history, and the LWW tie-breaks."""
    rules = RULES[variant]
    changes = traffic(rules, 11, "mixed", 150)
    rng = random.Random(11)
    redelivered: list[Step] = [*changes, *rng.sample(changes, len(changes) // 5)]
    rng.shuffle(redelivered)
    steps: list[Step] = list(redelivered)
    # Sweeps in between, including one behind the events (a lagging clock).
    steps.insert(len(steps) // 3, to_ms(START) + 20 * 86_400_000)
    steps.insert(2 * len(steps) // 3, to_ms(START) + 5 * 86_400_000)
    check(rules, [*steps, to_ms(START) + 200 * 86_400_000])


def test_equal_stamps_break_ties_the_same_way() -> None:
    """The same event id and time with different values (a replayed, edited
    event): both engines keep the value whose repr sorts last."""
    rules = RULES["default"]
    base = dict(HEALTHY_DISCOVERY)
    steps: list[Step] = [
        change(0, event_id="e1", **base),
        change(1, event_id="tie", amount=5.0, next_step="b'x", probability=10),
        change(1, event_id="tie", amount=50, next_step='say "hi"', probability=10.0),
        change(1, event_id="tie", amount=True, next_step="tbd", probability=None),
        change(2, event_id="e3", name="Ünïcode ß deal", forecast_category="BEST_CASE"),
        ms(120),
    ]
    check(rules, steps)


def long_history(opp: str) -> list[OpportunityChange]:
    """119 changes to one deal: its timeline outgrows the cap and folds."""
    steps = [change(0, opp=opp, **HEALTHY_NEGOTIATION, event_id=f"sf:{opp}:" + "k" * 40)]
    stages = ["Discovery", "Solution", "Proposal", "Negotiation", "Prospecting"]
    for day in range(1, 120):
        fields: dict[str, Any] = {"amount": 40000.0 + day}
        if day % 7 == 0:
            fields["stage"] = stages[day % len(stages)]
        if day % 11 == 0:
            fields["close_date"] = f"2026-{(day % 12) + 1:02d}-15"
        if day % 13 == 0:
            fields["forecast_category"] = "Best Case"
        steps.append(change(day, opp=opp, event_id=f"sf:{opp}:{'t' * 40}:{day}", **fields))
    return steps


def test_a_long_history_folds_into_the_base_identically() -> None:
    rules = RULES["default"]
    steps: list[Step] = list(long_history("006A"))
    # Late events: one inside the kept timeline, one older than the fold.
    steps.append(change(110.5, event_id="late-1", stage="Proposal"))
    steps.append(change(3.5, event_id="late-2", stage="Solution", amount=1.0))
    steps.append(ms(200))
    check(rules, steps)


# ---- the engine's and the checks' unit cases, as parity cases ------------------

def _healthy(**overrides: Any) -> OpportunityChange:
    return change(0, contacts=["003A", "003B"], **{**HEALTHY_NEGOTIATION, **overrides})


def _full(item: OpportunityChange) -> OpportunityChange:
    return item.model_copy(update={"full": True})


CASES: dict[str, list[Step]] = {
    "category_mismatch_resolves": [
        change(0, opp="a", **{**HEALTHY_DISCOVERY, "forecast_category": "Commit"}),
        change(1, opp="a", name="Acme (renamed)"),
        change(2, opp="a", forecast_category="Pipeline")],
    "closing_resolves": [
        change(0, opp="b", **{**HEALTHY_DISCOVERY, "forecast_category": "Commit"}),
        change(3, opp="b", stage="Closed Lost")],
    "history_intervals": [
        change(0, opp="c", **HEALTHY_DISCOVERY, event_id="a"),
        change(2, opp="c", stage="Solution", event_id="b"),
        change(7, opp="c", stage="Closed Won", event_id="c")],
    "category_history": [
        change(0, opp="d", **HEALTHY_DISCOVERY, event_id="a"),
        change(1, opp="d", forecast_category="Best Case", event_id="b"),
        change(2, opp="d", forecast_category="BEST_CASE", event_id="c"),
        change(3, opp="d", stage="Solution", forecast_category="Commit", event_id="d"),
        change(4, opp="d", forecast_category=None, event_id="e"),
        change(5, opp="d", stage="Closed Won", forecast_category="Pipeline", event_id="f")],
    "aliases": [change(0, opp="e", stage="appointmentscheduled", event_id="a"),
                change(1, opp="e", stage="qualifiedtobuy", event_id="b")],
    "redelivery": [change(0, opp="f", **HEALTHY_NEGOTIATION, event_id="x"),
                   change(1, opp="f", stage="Closed Won", event_id="y"),
                   change(0, opp="f", **HEALTHY_NEGOTIATION, event_id="x"),
                   change(1, opp="f", stage="Closed Won", event_id="y")],
    "late_republish": [change(0, opp="g", stage="Prospecting", event_id="a"),
                       change(5, opp="g", stage="Proposal", event_id="c"),
                       change(2, opp="g", stage="Discovery", event_id="b")],
    "late_retract": [change(0, opp="h", stage="Prospecting", event_id="a"),
                     change(5, opp="h", stage="Discovery", event_id="c"),
                     change(2, opp="h", stage="Discovery", event_id="b")],
    "delete_restore": [change(0, opp="i", stage="Discovery", event_id="a"),
                       change(1, opp="i", op="delete", event_id="b"),
                       change(3, opp="i", op="restore", event_id="c")],
    "whole_record_after_delete": [
        change(0, opp="j", stage="Discovery", event_id="a"),
        change(1, opp="j", op="delete", event_id="b"),
        _full(change(3, opp="j", stage="Discovery", event_id="c"))],
    "older_whole_record": [
        change(0, opp="k", stage="Discovery", event_id="a"),
        change(2, opp="k", op="delete", event_id="b"),
        _full(change(1, opp="k", stage="Discovery", event_id="c"))],
    "skip_and_regress": [change(0, opp="l", stage="Prospecting"),
                         change(1, opp="l", stage="Proposal"),
                         change(2, opp="l", stage="Discovery"),
                         change(3, opp="l", stage="Closed Lost"),
                         change(4, opp="l", stage="Solution")],
    "sweep_close_out": [
        change(0, opp="m", contacts=["003A", "003B"],
               **{**HEALTHY_NEGOTIATION, "close_date": "2026-06-30",
                  "next_meeting_date": "2026-12-01", "next_step_date": "2026-12-01"}),
        ms(70), ms(70)],
    "lagging_sweep": [change(0, opp="n", **{**HEALTHY_DISCOVERY, "close_date": "2026-01-10"}),
                      change(10, opp="n", op="activity"), ms(1)],
    "gap_then_full": [_healthy(), change(1, op="gap"),
                      _full(change(2, **HEALTHY_NEGOTIATION, contacts=["003A", "003B"])), ms(2)],
    "merge": [_healthy(opp="p", amount=None),
              change(1, opp="p", op="merge").model_copy(update={"merged_into": "q"})],
    "deleted_no_findings": [_healthy(opp="r", amount=None), change(1, opp="r", op="delete"), ms(9)],
    "amounts": [_healthy(opp="s1", amount=0.0), _healthy(opp="s2", amount=-500.0),
                _healthy(opp="s3", amount=1234567.891), _healthy(opp="s4", amount=0.000012),
                _healthy(opp="s5", amount=None), ms(1)],
    "junk": [_healthy(opp="t", champion="asdf", competition="...", paper_process="x",
                      economic_buyer="zzzz", decision_criteria="TBD",
                      decision_process="it's fine"),
             _healthy(opp="t2", champion=12.5, competition=7, paper_process=True)],
    "threading": [change(0, opp="u", contacts=["003A"],
                         **{**HEALTHY_NEGOTIATION, "amount": 250000.0}),
                  change(0.5, opp="u", op="activity", contacts=["003B"]),
                  _healthy(opp="u2", amount=99999.0, contact_count=None),
                  change(0, opp="u3", **{**HEALTHY_NEGOTIATION, "amount": 250000.0,
                                         "contact_count": 3}),
                  change(0, opp="u4", **{**HEALTHY_NEGOTIATION, "amount": 1e7,
                                         "contact_count": 1.0})],
    "parked_and_past": [_healthy(opp="v", close_date="2026-12-31"),
                        _healthy(opp="v2", close_date="2099-12-31"),
                        _healthy(opp="v3", close_date="2026-01-02"), ms(3), ms(300)],
    "unknown_stage": [_healthy(opp="w", stage="Verbal Yes"),
                      _healthy(opp="w2", stage="it's \"odd\""), ms(40)],
    "renewals": [change(0, opp="x", pipeline="Renewal", stage="Engaged", next_step="tbd",
                        forecast_category="Commit"),
                 change(3, opp="x", stage="Quote Sent"), ms(100)],
    "slips": [_healthy(opp="y", close_date="2026-02-01"),
              change(1, opp="y", close_date="2026-03-01"),
              change(2, opp="y", close_date="2026-04-01"),
              change(3, opp="y", close_date="2026-05-01"),
              change(4, opp="y", close_date="2026-02-15")],
    "next_dates": [_healthy(opp="z", next_meeting_date="2026-01-06",
                            next_step_date="2026-01-08"),
                   ms(2), ms(4), change(5, opp="z", next_step_date="2026-02-01"), ms(6)],
    "new_york_evening": [_healthy(opp="ny", close_date="2026-01-07"),
                         ms(2) + 17 * 3_600_000, ms(2) + 21 * 3_600_000],
}


@pytest.mark.parametrize("variant", ["default", "new_york", "disabled"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_unit_cases_give_identical_records(case: str, variant: str) -> None:
    check(RULES[variant], CASES[case])


@pytest.mark.parametrize(("rule_id", "broken", "fixed"), ONE_INPUT_CASES)
def test_incremental_evaluation_resolves_identically(
    rule_id: str, broken: dict[str, Any], fixed: dict[str, Any]
) -> None:
    fields = {**HEALTHY_NEGOTIATION, **broken}
    nulled = [name for name, value in fields.items() if value is None]
    fields = {name: value for name, value in fields.items() if value is not None}
    python = check(RULES["default"], [change(0, **fields, nulled=nulled),
                                      change(1, contacts=["c1"]), change(2, **fixed)])
    assert [a.rule_id for a in python.alerts if a.kind == "resolution"] == [rule_id]


def test_an_unreadable_change_is_skipped_and_reported_not_fatal() -> None:
    """As the replay dead-letters a change the engine cannot take and goes
    on, the batch goes on: the other changes give Python's records."""
    rules = RULES["default"]
    good = [change(0, opp="r1", **HEALTHY_DISCOVERY), change(1, opp="r1", stage="Proposal"),
            change(2, opp="r2", **HEALTHY_NEGOTIATION)]
    bad_time = {**good[1].__dict__, "occurred_at": "yesterday"}
    batch = [good[0].to_json(), b"{not json", good[1].to_json(),
             orjson.dumps(bad_time), good[2].to_json()]
    core = hygiene_core.Core(native_rules(rules))
    native = Streams()
    native.add(*core.apply_batch(batch))
    assert_same(python_run(rules, good), native)
    rejects = core.take_rejects()
    assert [index for index, _ in rejects] == [1, 3]
    assert "yesterday" in rejects[1][1]
    assert core.take_rejects() == []
    assert len(core) == 2


# ---- the stored form -------------------------------------------------------------

def _python_apply(engine: Engine, states: dict[str, OpportunityState],
                  changes: Sequence[OpportunityChange], out: Streams) -> None:
    for item in changes:
        state, outcome = engine.apply(states.get(item.opportunity_id), item)
        states[item.opportunity_id] = state
        out.add_outcome(outcome)


def _native_apply(core: Core, changes: Sequence[OpportunityChange], out: Streams) -> None:
    encoded = [c.to_json() for c in changes]
    for start in range(0, len(encoded), BATCH):
        out.add(*core.apply_batch(encoded[start:start + BATCH]))


@pytest.mark.parametrize("variant", ["default", "new_york"])
def test_stored_states_are_identical_and_carry_on_identically(variant: str) -> None:
    """``dump_state`` writes what ``state_to_json`` writes; a state stored by
    either engine loads in the other; and both carry on from a stored state
    (no memo: full derivation) with the same records."""
    rules = RULES[variant]
    changes = [*traffic(rules, 21, "mixed", 200), *long_history("006LONG")]
    rng = random.Random(21)
    rng.shuffle(changes)
    late = [*rng.sample(changes, len(changes) // 10),  # redelivered after the restore
            change(1.5, opp="006LONG", event_id="before-the-fold", stage="Solution")]
    half = len(changes) // 2
    engine = Engine(rules)
    states: dict[str, OpportunityState] = {}
    core = hygiene_core.Core(native_rules(rules))
    python, native = Streams(), Streams()
    _python_apply(engine, states, changes[:half], python)
    _native_apply(core, changes[:half], native)
    assert_same(python, native)
    assert core.dump_state("no such opportunity") is None
    for opportunity_id, state in states.items():
        stored = core.dump_state(opportunity_id)
        assert stored == state_to_json(state)  # the very bytes
        assert state_from_json(stored).model_dump() == state.model_dump()
    assert any(state.base for state in states.values())  # some timelines were folded

    # Both restart from storage: Python from the native dump, native from Python's.
    restored = {o: state_from_json(core.dump_state(o)) for o in states}
    fresh = hygiene_core.Core(native_rules(rules))
    for state in states.values():
        fresh.load_state(state_to_json(state))
    assert len(fresh) == len(states)
    python, native = Streams(), Streams()
    rest = [*changes[half:], *late]
    _python_apply(engine, restored, rest, python)
    _native_apply(fresh, rest, native)
    last = max(to_ms(c.occurred_at) for c in changes)
    for state in restored.values():
        python.add_outcome(engine.sweep(state, last))
    native.add(*fresh.sweep_all(last))
    assert_same(python, native)
    assert python.history and python.alerts
    for opportunity_id, state in restored.items():
        assert orjson.loads(fresh.dump_state(opportunity_id)) == orjson.loads(state_to_json(state))


def test_legacy_stored_forms_load() -> None:
    """The list timeline and absolute stamps written before packing."""
    rules = RULES["default"]
    engine = Engine(rules)
    state, _ = engine.apply(None, change(0, opp="legacy", **HEALTHY_DISCOVERY, event_id="a"))
    state, _ = engine.apply(state, change(1, opp="legacy", stage="Solution", event_id="b"))
    legacy = orjson.loads(state_to_json(state))
    legacy["timeline"] = [list(o) for o in state.timeline]
    legacy["stamps"] = dict(state.stamps)
    core = hygiene_core.Core(native_rules(rules))
    core.load_state(orjson.dumps(legacy))
    assert orjson.loads(core.dump_state("legacy")) == orjson.loads(state_to_json(state))
    restored = state_from_json(orjson.dumps(legacy))
    steps = [change(2, opp="legacy", stage="Proposal", event_id="c"),
             change(0.5, opp="legacy", stage="Discovery", amount=7.0, event_id="late")]
    python, native = Streams(), Streams()
    _python_apply(engine, {"legacy": restored}, steps, python)
    _native_apply(core, steps, native)
    assert_same(python, native)
