"""The flat warehouse rows published beside each rollup snapshot: one per
(manager, period, category, currency), taken from the snapshot, with the
standing override on its currency's row, and zeros for a currency that left
(also after the partition moved to another worker)."""

from __future__ import annotations

from typing import Any

import pytest

from processor.forecast.rollup_table import ManagerRollups
from processor.forecast.rows import rollup_row_id
from processor.rules import RuleSet, default_rules
from schemas.forecast import RollupRowRecord
from tests.builders import HEALTHY_DISCOVERY, change

from .harness import PARTITIONS, ROLLUP_TOPICS, RollupSide, StateSide
from .test_rollups import CALENDAR, Q1, submit

Row = tuple[str, str, float, int, float | None]
"""(category, currency, amount, count, override amount)."""


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return default_rules()


def deal(manager: str, amount: float, currency: str = "USD") -> dict[str, Any]:
    return {**HEALTHY_DISCOVERY, "manager_id": manager, "close_date": "2026-03-31",
            "amount": amount, "currency": currency}


def rows_of(rollups: RollupSide, since: int) -> dict[str, RollupRowRecord]:
    found: dict[str, RollupRowRecord] = {}
    for key, value in rollups.publish.on(ROLLUP_TOPICS.rollup_rows)[since:]:
        row = RollupRowRecord.model_validate_json(value)
        assert key == row.manager_id.encode()
        found[row.record_id] = row
    return found


def brief(rows: dict[str, RollupRowRecord]) -> set[Row]:
    return {(r.category, r.currency, r.amount, r.count, r.override_amount)
            for r in rows.values()}


def test_rows_follow_the_snapshot_and_zero_a_currency_that_left(rules: RuleSet) -> None:
    side, rollups = StateSide(rules, CALENDAR), RollupSide(CALENDAR)
    rollups.deliver(side.entries(
        change(0, opp="006A", **deal("m-1", 10.0)),
        change(0, opp="006B", **deal("m-1", 5.5, "EUR"))))
    (record,) = rollups.flush()
    rows = rows_of(rollups, 0)
    assert brief(rows) == {("Pipeline", "USD", 10.0, 1, None), ("Pipeline", "EUR", 5.5, 1, None)}
    for row in rows.values():
        assert row.record_id == rollup_row_id("m-1", Q1, row.category, row.currency)
        assert (row.rollup_id, row.period, row.updated_at) == (
            record.record_id, Q1, record.updated_at)

    # The EUR deal becomes a USD deal: the EUR row is zeroed, once.
    published = len(rollups.publish.on(ROLLUP_TOPICS.rollup_rows))
    rollups.deliver(side.entries(change(1, opp="006B", **deal("m-1", 5.5, "USD"))))
    rollups.flush()
    assert brief(rows_of(rollups, published)) == {
        ("Pipeline", "USD", 15.5, 2, None), ("Pipeline", "EUR", 0.0, 0, None)}
    published = len(rollups.publish.on(ROLLUP_TOPICS.rollup_rows))
    rollups.deliver(side.entries(change(2, opp="006A", **deal("m-1", 11.0))))
    rollups.flush()
    assert brief(rows_of(rollups, published)) == {("Pipeline", "USD", 16.5, 2, None)}


def test_an_override_stands_on_its_currency_row_and_survives_a_move(rules: RuleSet) -> None:
    side, rollups = StateSide(rules, CALENDAR), RollupSide(CALENDAR)
    rollups.deliver(side.entries(change(0, opp="006A", **deal("m-1", 300.0))))
    rollups.flush()
    outcomes, _ = submit(rollups, currency="EUR")
    assert outcomes == ["accepted"]
    published = len(rollups.publish.on(ROLLUP_TOPICS.rollup_rows))
    rollups.flush()
    rows = rows_of(rollups, published)
    assert brief(rows) == {("Pipeline", "USD", 300.0, 1, None),
                           ("Commit", "EUR", 0.0, 0, 500.0)}
    (commit,) = [r for r in rows.values() if r.category == "Commit"]
    assert (commit.override_id, commit.override_currency, commit.override_reason,
            commit.override_by) == ("ov-1", "EUR", "Acme verbally committed", "u-boss")
    assert commit.override_at is not None

    # Another worker takes the partition over (same table, fresh memory),
    # and the override is withdrawn: its row still gets zeroed.
    rollups.rollups = ManagerRollups(PARTITIONS, CALENDAR, ROLLUP_TOPICS, 14)
    rollups.flush()  # the takeover republishes
    outcomes, _ = submit(rollups, override_id="ov-2", amount=None, currency=None,
                         reason="deal slipped")
    assert outcomes == ["accepted"]
    published = len(rollups.publish.on(ROLLUP_TOPICS.rollup_rows))
    rollups.flush()
    assert brief(rows_of(rollups, published)) == {("Pipeline", "USD", 300.0, 1, None),
                                                  ("Commit", "EUR", 0.0, 0, None)}
