"""Property: whatever the history, the order and the repeats, the rollups
equal the sums over the opportunities' current states.

Random histories over several opportunities and managers (moves between
managers, periods, categories and currencies, amount changes, closes,
deletions, restores, merges) are delivered to the state side with
duplicates and out of order, in random batches; the entry updates it sends
are delivered to the rollup side with duplicates and out of order too, with
snapshots published at random points. The last snapshot published per
(manager, period) must equal the rollup summed directly over the states an
in-order, once-only delivery ends with; so must the book a worker rebuilds
from the rollup table after a takeover.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.engine import Engine
from processor.forecast.fiscal import FiscalCalendar
from processor.rules import RuleSet, default_rules
from schemas import OpportunityChange, OpportunityState
from tests.builders import HEALTHY_DISCOVERY, change

from .harness import RollupSide, StateSide, compare, oracle

RULES: RuleSet = default_rules()
OPPS = [f"006P{n}" for n in range(6)]
MANAGERS = ["m-1", "m-2", "m-3"]
CLOSE_DATES = ["2026-01-15", "2026-02-01", "2026-04-30", "2026-05-01", "2026-09-30"]
STAGES = ["Prospecting", "Discovery", "Proposal", "Negotiation", "Closed Won", "Closed Lost",
          "Nonsense"]
AMOUNTS = [0.1, 0.2, 0.3, 1000.0, 33333.33, 1e7 / 3]

field_change = st.one_of(
    st.fixed_dictionaries({"manager_id": st.sampled_from(MANAGERS)}),
    st.fixed_dictionaries({"close_date": st.sampled_from(CLOSE_DATES)}),
    st.fixed_dictionaries({"stage": st.sampled_from(STAGES)}),
    st.fixed_dictionaries({"forecast_category": st.sampled_from(
        ["Pipeline", "Best Case", "Commit", "Omitted", "Closed"])}),
    st.fixed_dictionaries({"amount": st.sampled_from(AMOUNTS)}),
    st.fixed_dictionaries({"currency": st.sampled_from(["USD", "EUR"])}),
)
step = st.tuples(
    st.integers(0, len(OPPS) - 1),
    st.integers(1, 200),  # hours after the previous event of the history
    st.one_of(field_change.map(lambda f: ("upsert", f)),
              st.sampled_from([("delete", {}), ("restore", {}), ("merge", {})])),
)


@st.composite
def histories(draw: st.DrawFn) -> list[OpportunityChange]:
    changes = []
    for n, opp in enumerate(OPPS):  # every deal starts whole
        start = {**HEALTHY_DISCOVERY, "manager_id": draw(st.sampled_from(MANAGERS)),
                 "close_date": draw(st.sampled_from(CLOSE_DATES)),
                 "amount": draw(st.sampled_from(AMOUNTS))}
        changes.append(change(n / 24, opp=opp, event_id=f"{opp}-0", **start))
    hours = 1.0
    for number, (index, gap, (op, fields)) in enumerate(draw(st.lists(step, max_size=40))):
        hours += gap
        extra: dict[str, Any] = {"merged_into": "006MERGED"} if op == "merge" else {}
        opp = OPPS[index]
        changes.append(change(hours / 24, op=op, opp=opp, event_id=f"{opp}-{number + 1}",
                              **fields, **extra))
    return changes


def merge_change(c: OpportunityChange) -> OpportunityChange:
    # change() puts every keyword into fields; a merge names its survivor.
    if c.op != "merge":
        return c
    return c.model_copy(update={"fields": {}, "merged_into": c.fields["merged_into"]})


def truth(changes: list[OpportunityChange]) -> list[OpportunityState]:
    engine = Engine(RULES)
    states: dict[str, OpportunityState] = {}
    for c in sorted(changes, key=lambda c: c.occurred_at):
        states[c.opportunity_id], _ = engine.apply(states.get(c.opportunity_id), c)
    return list(states.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.integers(1, 12), st.data())
def test_rollups_equal_the_sums_over_the_current_states(
    history: list[OpportunityChange], first_month: int, data: st.DataObject
) -> None:
    history = [merge_change(c) for c in history]
    calendar = FiscalCalendar(first_month)
    repeats = data.draw(st.lists(st.sampled_from(history), max_size=10), label="repeats")
    delivery = data.draw(st.permutations(history + repeats), label="delivery")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(delivery)), max_size=6), label="cuts"))

    side, rollups = StateSide(RULES, calendar), RollupSide(calendar)
    updates = []
    for start, end in zip([0, *cuts], [*cuts, len(delivery)], strict=True):
        if end > start:
            updates += side.entries(*delivery[start:end])
    updates += data.draw(st.lists(st.sampled_from(updates), max_size=8) if updates
                         else st.just([]), label="repeated updates")
    updates = data.draw(st.permutations(updates), label="update order")
    flush_at = set(data.draw(st.lists(st.integers(0, len(updates)), max_size=4), label="flushes"))
    for n, update in enumerate(updates):
        if n in flush_at:
            rollups.flush()
        rollups.deliver([update])
    rollups.flush()

    want = oracle(truth(history), RULES, calendar)
    assert want == oracle(side.current(), RULES, calendar)
    compare(rollups.latest(), want)

    rollups.rollups.forget()  # another worker takes over: rebuilt from the table
    rebuilt = {(r.manager_id, r.period): r for r in rollups.flush()}
    compare(rebuilt, want)
