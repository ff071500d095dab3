"""Hypothesis strategies shared by the property tests: one opportunity's
change history, with dates near its event times so time-driven rules flip
inside the windows the tests look at."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from processor.rules import default_rules
from schemas import OpportunityChange
from tests.builders import T0, change

STAGES = [s.name for s in default_rules().default_pipeline.stages] + ["qualifiedtobuy"]

# Dates around the histories' event times, so time-driven rules flip within
# the windows the tests look at.
NEAR_DATES = st.integers(-30, 200).map(lambda d: (T0.date() + timedelta(days=d)).isoformat())

field_values: dict[str, st.SearchStrategy[Any]] = {
    "stage": st.sampled_from(STAGES),
    "amount": st.one_of(st.none(), st.floats(-10, 500_000, allow_nan=False)),
    "close_date": NEAR_DATES,
    "next_meeting_date": NEAR_DATES,
    "next_step_date": NEAR_DATES,
    "forecast_category": st.sampled_from(["Pipeline", "Best Case", "Commit", "BEST_CASE", None]),
    "owner_id": st.sampled_from(["u1", "u2"]),
    "next_step": st.sampled_from(["Call CFO", "tbd", None]),
    "champion": st.sampled_from(["Dana", "asdf", None]),
    "contact_count": st.sampled_from([None, 1, 4]),
    "pipeline": st.sampled_from(["new_business", "renewals"]),
}


@st.composite
def histories(draw: st.DrawFn, opp: str = "006A") -> list[OpportunityChange]:
    count = draw(st.integers(1, 18))
    events = []
    for index in range(count):
        day = draw(st.integers(0, 120)) + draw(st.sampled_from([0, 0.25, 0.5]))
        op = draw(st.sampled_from(["upsert"] * 6 + ["activity", "delete", "restore", "gap"]))
        fields = {}
        if op in ("upsert", "restore"):
            names = draw(st.lists(st.sampled_from(sorted(field_values)), min_size=1, max_size=4,
                                  unique=True))
            fields = {name: draw(field_values[name]) for name in names}
        contacts = draw(st.lists(st.sampled_from(["c1", "c2", "c3"]), max_size=2))
        events.append(change(day, op=op, opp=opp, event_id=f"{opp}-e{index}", contacts=contacts,
                             **fields))
    return events
