"""Manager rollups without Kafka: the state side's entry updates, the
rollup table's incremental totals, the paced snapshots, and overrides."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
import orjson
import pytest

from processor.forecast.fiscal import FiscalCalendar
from processor.forecast.rollup_table import route_override
from processor.rules import RuleSet, default_rules
from schemas import DeadLetter
from schemas.forecast import OverrideLogRecord, RollupRecord
from schemas.publish import path_for
from tests.builders import HEALTHY_DISCOVERY, HEALTHY_NEGOTIATION, change

from .harness import ROLLUP_TOPICS, RollupSide, StateSide, compare, oracle

CALENDAR = FiscalCalendar(2)  # FY2027-Q1 = Feb-Apr 2026
Q4 = "FY2026-Q4"  # Nov 2025 - Jan 2026
Q1 = "FY2027-Q1"


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return default_rules()


def deal(n: int, manager: str, close: str, amount: float, **more: Any) -> dict[str, Any]:
    return {**HEALTHY_DISCOVERY, "manager_id": manager, "close_date": close,
            "amount": amount, **more}


def two_deals(
    rules: RuleSet, second_manager: str, second_close: str = "2026-03-31"
) -> tuple[StateSide, RollupSide]:
    side, rollups = StateSide(rules, CALENDAR), RollupSide(CALENDAR)
    rollups.deliver(side.entries(
        change(0, opp="006A", **deal(0, "m-1", "2026-03-31", 10.0)),
        change(0, opp="006B", **deal(1, second_manager, second_close, 20.0))))
    return side, rollups


def line(record: RollupRecord, category: str) -> dict[str, object]:
    found = next(c for c in record.categories if c.category == category)
    return {"count": found.count,
            "totals": {t.currency: t.amount for t in found.totals},
            "won": {t.currency: t.amount for t in found.won}}


def test_moves_between_managers_periods_and_categories(rules: RuleSet) -> None:
    side, rollups = StateSide(rules, CALENDAR), RollupSide(CALENDAR)
    rollups.deliver(side.entries(
        change(0, opp="006A", **deal(0, "m-1", "2026-03-31", 100.0)),
        change(0, opp="006B", **deal(1, "m-1", "2026-03-15", 50.5)),
        change(0, opp="006C", **deal(2, "m-1", "2026-03-01", 7.0, currency="EUR")),
        change(0, opp="006D", **deal(3, "m-2", "2026-01-10", 1.0)),
    ))
    first = {(r.manager_id, r.period): r for r in rollups.flush()}
    assert set(first) == {("m-1", Q1), ("m-2", Q4)}
    # Currencies are never added together.
    assert line(first["m-1", Q1], "Pipeline") == {
        "count": 3, "totals": {"EUR": 7.0, "USD": 150.5}, "won": {}}
    assert rollups.flush() == []  # nothing changed, nothing published

    rollups.deliver(side.entries(change(1, opp="006A", manager_id="m-2")))  # another manager
    rollups.deliver(side.entries(change(1, opp="006B", close_date="2026-01-31")))  # another period
    rollups.deliver(side.entries(change(1, opp="006C", **{  # another category
        **HEALTHY_NEGOTIATION, "currency": "EUR", "amount": 7.0,
        "close_date": "2026-03-01", "manager_id": "m-1"})))
    rollups.deliver(side.entries(change(2, opp="006D", stage="Closed Won")))
    second = {(r.manager_id, r.period): r for r in rollups.flush()}
    assert set(second) == {("m-1", Q1), ("m-2", Q1), ("m-1", Q4), ("m-2", Q4)}
    assert line(second["m-1", Q1], "Pipeline") == {"count": 0, "totals": {}, "won": {}}
    assert line(second["m-1", Q1], "Commit") == {"count": 1, "totals": {"EUR": 7.0}, "won": {}}
    assert line(second["m-2", Q1], "Pipeline")["totals"] == {"USD": 100.0}
    assert line(second["m-1", Q4], "Pipeline")["totals"] == {"USD": 50.5}
    assert line(second["m-2", Q4], "Closed") == {"count": 1, "totals": {"USD": 1.0},
                                                 "won": {"USD": 1.0}}
    compare(rollups.latest(), oracle(side.current(), rules, CALENDAR))


def test_deleted_and_merged_deals_leave_and_an_emptied_bucket_publishes_zeros(
    rules: RuleSet,
) -> None:
    side, rollups = two_deals(rules, "m-1")
    rollups.flush()
    rollups.deliver(side.entries(change(1, opp="006A", op="delete")))
    rollups.deliver(side.entries(change(1, opp="006B", op="merge", merged_into="006Z")))
    (emptied,) = rollups.flush()
    assert (emptied.manager_id, emptied.count) == ("m-1", 0)
    assert all(c.totals == [] and c.count == 0 for c in emptied.categories)
    assert rollups.flush() == []
    rollups.deliver(side.entries(change(2, opp="006A", op="restore")))  # back again
    (back,) = rollups.flush()
    assert line(back, "Pipeline")["totals"] == {"USD": 10.0}


def test_a_worker_taking_over_republishes_the_same_rollups_from_the_table(
    rules: RuleSet,
) -> None:
    _, rollups = two_deals(rules, "m-2", "2026-01-31")
    first = sorted(rollups.flush(), key=lambda r: r.record_id)
    rollups.rollups.forget()  # partitions revoked and assigned again
    assert all(rollups.rollups.needs_flush(p) for p in range(4))
    again = sorted(rollups.flush(), key=lambda r: r.record_id)
    assert again == first
    assert not any(rollups.rollups.needs_flush(p) for p in range(4))


# ---- overrides ------------------------------------------------------------------------


def submit_body(**fields: Any) -> bytes:
    """An override request; a field given as ``...`` is left out."""
    body = {"override_id": "ov-1", "manager_id": "m-1", "period": Q1, "category": "Commit",
            "amount": 500.0, "currency": "USD", "reason": "Acme verbally committed",
            "submitted_by": "u-boss", "submitted_at": "2026-02-10T09:00:00Z", **fields}
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def submit(rollups: RollupSide, at_ms: int = 1_770_000_000_000, **fields: Any) -> tuple[
        list[str], list[tuple[str, bytes | None, bytes]]]:
    topic, key, value = route_override(submit_body(**fields), b"any-key", ROLLUP_TOPICS,
                                       source="t.overrides", partition=0, offset=7,
                                       received_at_ms=at_ms)
    if topic == ROLLUP_TOPICS.dead_letter:
        return [], [(topic, key, value)]
    before = len(rollups.publish.published)
    outcomes = rollups.deliver([(key, value)])
    return outcomes, rollups.publish.published[before:]


def refusal(out: list[tuple[str, bytes | None, bytes]]) -> DeadLetter:
    ((topic, key, value),) = out
    assert topic == ROLLUP_TOPICS.dead_letter and key == b"any-key"
    return DeadLetter.model_validate_json(value)


def test_an_override_is_logged_and_shown_beside_the_system_total(rules: RuleSet) -> None:
    side, rollups = StateSide(rules, CALENDAR), RollupSide(CALENDAR)
    rollups.deliver(side.entries(change(0, opp="006A", **{
        **HEALTHY_NEGOTIATION, "manager_id": "m-1", "close_date": "2026-03-31",
        "amount": 300.0})))
    rollups.flush()
    outcomes, out = submit(rollups)
    assert outcomes == ["accepted"]
    ((topic, key, value),) = out
    assert (topic, key) == (ROLLUP_TOPICS.override_log, b"m-1")
    log = OverrideLogRecord.model_validate_json(value)
    assert (log.value_before, log.value_before_source, log.value_after,
            log.value_after_source, log.system_total) == (300.0, "system", 500.0, "override",
                                                          300.0)
    assert (log.submitted_by, log.reason, log.action) == (
        "u-boss", "Acme verbally committed", "set")
    (record,) = rollups.flush()
    commit = next(c for c in record.categories if c.category == "Commit")
    assert commit.totals[0].amount == 300.0
    assert commit.override is not None and commit.override.amount == 500.0
    assert commit.override.reason == "Acme verbally committed"
    # What to forecast with: the manager's 500 in place of the system's 300.
    assert [(t.currency, t.amount, t.count) for t in commit.forecast] == [(
        commit.override.currency, 500.0, 1)]
    assert next(c for c in record.categories if c.category == "Pipeline").forecast == \
        next(c for c in record.categories if c.category == "Pipeline").totals

    # The same override again (a redelivery): nothing new.
    assert submit(rollups) == (["duplicate"], [])
    # A second one replaces it; the log shows the first as the value before.
    _, out = submit(rollups, override_id="ov-2", amount=450.0, reason="Legal slipped")
    second = OverrideLogRecord.model_validate_json(out[0][2])
    assert (second.value_before, second.value_before_source, second.value_after) == (
        500.0, "override", 450.0)
    assert second.previous_override is not None
    assert second.previous_override.override_id == "ov-1"
    # Withdrawn: the system total shows again.
    _, out = submit(rollups, override_id="ov-3", amount=None, currency=...,
                    reason="Back to the numbers")
    third = OverrideLogRecord.model_validate_json(out[0][2])
    assert (third.action, third.value_before, third.value_after, third.value_after_source) == (
        "withdrawn", 450.0, 300.0, "system")
    (record,) = rollups.flush()
    assert all(c.override is None for c in record.categories)
    # The overrides survive a takeover: rebuilt from the table.
    _, out = submit(rollups, override_id="ov-4", amount=1.0)
    rollups.rollups.forget()
    (rebuilt,) = rollups.flush()
    assert next(c for c in rebuilt.categories if c.category == "Commit").override is not None


@pytest.mark.parametrize(("fields", "code"), [
    ({"reason": ...}, "missing_reason"),
    ({"reason": "   "}, "missing_reason"),
    ({"reason": None}, "missing_reason"),
    ({"manager_id": "m-9"}, "unknown_manager"),
    ({"period": "FY2027-Q3"}, "unknown_period"),
    ({"period": "2026-Q1"}, "invalid_override"),
    ({"amount": -1.0}, "invalid_override"),
    ({"currency": ...}, "invalid_override"),
    ({"category": "Maybe"}, "invalid_override"),
    ({"amount": None, "currency": ...}, "nothing_to_withdraw"),
])
def test_refused_overrides_go_to_the_dead_letter_topic_with_the_reason(
    rules: RuleSet, fields: dict[str, Any], code: str
) -> None:
    side, rollups = StateSide(rules, CALENDAR), RollupSide(CALENDAR)
    rollups.deliver(side.entries(change(0, opp="006A", **deal(0, "m-1", "2026-03-31", 10.0))))
    outcomes, out = submit(rollups, **fields)
    letter = refusal(out)
    assert letter.error.startswith(f"{code}: ")
    assert letter.reason == "invalid_override"
    assert (letter.source, letter.partition, letter.offset) == ("t.overrides", 0, 7)
    assert orjson.loads(letter.original_value()).get("override_id") == "ov-1"
    assert outcomes in ([], [code])
    assert rollups.publish.on(ROLLUP_TOPICS.override_log) == []


def test_invalid_json_is_refused_as_malformed() -> None:
    topic, key, value = route_override(b"{nope", None, ROLLUP_TOPICS, source="t.overrides",
                                       partition=1, offset=2, received_at_ms=0)
    letter = DeadLetter.model_validate_json(value)
    assert (topic, key, letter.reason) == (ROLLUP_TOPICS.dead_letter, None, "malformed_json")
    assert letter.error.startswith("malformed_json: ") and letter.original_value() == b"{nope"


def test_published_records_validate_against_their_json_schemas(rules: RuleSet) -> None:
    _, rollups = two_deals(rules, "m-1")
    _outcomes, out = submit(rollups, category="Pipeline")
    (record,) = rollups.flush()
    for name, value in (("rollup", record.model_dump_json()), ("override-log", out[0][2]),
                        ("override-request", submit_body())):
        jsonschema.validate(orjson.loads(value), orjson.loads(path_for(name).read_text()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**orjson.loads(submit_body()), "reason": " "},
                            orjson.loads(path_for("override-request").read_text()))


def test_an_override_in_another_currency_stands_beside_the_system_totals() -> None:
    from datetime import UTC, datetime

    from processor.forecast.book import forecast_totals
    from schemas.forecast import CurrencyTotal, OverrideView

    usd = CurrencyTotal(currency="USD", amount=300.0, count=2)
    view = OverrideView(override_id="ov", amount=90.0, currency="EUR", reason="r",
                        submitted_by="u", submitted_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert forecast_totals([usd], view) == [
        CurrencyTotal(currency="EUR", amount=90.0, count=0), usd]
    assert forecast_totals([usd], None) == [usd]
