"""What one opportunity contributes to its manager's rollup.

An opportunity counts in the bucket (manager, fiscal period of its close
date) under its standard forecast category, with its amount in its currency.
It counts nowhere when it has no manager, no close date, or no category (an
unknown stage with no category the rules know), and it leaves when it is
deleted or merged. A deal without an amount is counted with no amount; one
without a currency is totalled under XXX (ISO 4217: no currency).

``RollupRegrouping`` is the state agent's side of the regroup mechanism
(``processor.stream.regroup``): it sends each entry to the manager's
partition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from processor.core import fields as f
from processor.core.timeline import forecast_category
from processor.forecast.fiscal import FiscalCalendar, period_of_close_date
from processor.rules.config import RuleSet
from processor.stream.regroup import Membered, Membership, Payload

Outcome = Literal["open", "won", "lost"]
NO_CURRENCY = "XXX"


@dataclass(frozen=True, slots=True)
class Entry:
    period: str
    category: str
    outcome: Outcome
    currency: str
    amount: float | None

    def payload(self) -> Payload:
        return {"period": self.period, "category": self.category, "outcome": self.outcome,
                "currency": self.currency, "amount": self.amount}

    @classmethod
    def from_payload(cls, payload: Payload) -> Entry:
        return cls(payload["period"], payload["category"], payload["outcome"],
                   payload["currency"], payload["amount"])


def entry_of(
    state: Membered, rules: RuleSet, calendar: FiscalCalendar
) -> tuple[str, Entry] | None:
    """(manager id, entry), or None when the opportunity counts nowhere."""
    values = state.fields
    manager = rules.manager_of(values)
    if not manager or values.get(f.DELETED) or state.merged_into is not None:
        return None
    period = period_of_close_date(values.get(f.CLOSE_DATE), calendar)
    category = forecast_category(rules, values)
    if period is None or category is None:
        return None
    pipeline = rules.pipeline_for(values.get(f.PIPELINE))
    position = pipeline.stage_position(values.get(f.STAGE))
    stage = pipeline.stages[position] if position is not None else None
    outcome: Outcome = "open"
    if stage is not None and stage.closed:
        outcome = "won" if stage.won else "lost"
    amount = values.get(f.AMOUNT)
    if not isinstance(amount, int | float) or not math.isfinite(amount):
        amount = None
    currency = values.get(f.CURRENCY)
    currency = currency.upper() if isinstance(currency, str) and currency else NO_CURRENCY
    return str(manager), Entry(period, category, outcome, currency,
                               None if amount is None else float(amount))


class RollupRegrouping:
    """Which manager's rollup an opportunity counts in, and its entry there."""

    fields_read = frozenset((f.MANAGER_ID, f.OWNER_ID, f.DELETED, f.CLOSE_DATE, f.PIPELINE,
                             f.STAGE, f.FORECAST_CATEGORY, f.AMOUNT, f.CURRENCY))
    """What ``entry_of`` reads (``rules.manager_of``: manager, else the
    owner's; ``forecast_category``: pipeline, stage, category)."""
    renders_from_light = True  # the entry is what membership computes

    def __init__(self, rules: RuleSet, calendar: FiscalCalendar, topic: str) -> None:
        self.rules = rules
        self.calendar = calendar
        self.topic = topic

    def membership(self, state: Membered) -> Membership | None:
        # The entry is its own signature: small, hashable, and anything else
        # about the deal changing sends nothing.
        return entry_of(state, self.rules, self.calendar)

    def render(self, state: Membered, now_ms: int, membership: Membership) -> Payload | None:
        # The membership's second half is the entry itself.
        entry = membership[1]
        assert isinstance(entry, Entry), "a rollup membership is (manager, Entry)"
        return entry.payload()
