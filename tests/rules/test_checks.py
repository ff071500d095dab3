"""One test (or a few) per rule: the condition fires, and it does not fire on
a healthy opportunity."""

from __future__ import annotations

from typing import Any

import pytest

from processor.core.engine import Engine
from processor.rules import default_rules
from processor.rules.checks import Finding
from schemas import OpportunityChange, OpportunityState
from tests.builders import HEALTHY_DISCOVERY, HEALTHY_NEGOTIATION, change, ms

ENGINE = Engine(default_rules())


def run(*changes: OpportunityChange) -> OpportunityState:
    state = None
    for item in changes:
        state, _ = ENGINE.apply(state, item)
    assert state is not None
    return state


def found(*changes: OpportunityChange, now_days: float = 1) -> dict[str, Finding]:
    return ENGINE.findings(run(*changes), ms(now_days))


def healthy(**overrides: Any) -> OpportunityChange:
    return change(0, contacts=["003A", "003B"], **{**HEALTHY_NEGOTIATION, **overrides})


def test_healthy_negotiation_deal_has_no_findings() -> None:
    assert found(healthy()) == {}


def test_healthy_discovery_deal_has_no_findings() -> None:
    assert found(change(0, **HEALTHY_DISCOVERY)) == {}


def test_missing_entry_criteria_name_the_fields() -> None:
    result = found(healthy(decision_criteria=None, paper_process="  "))
    finding = result["stage_gate_missing_fields"]
    assert finding.details["missing_fields"] == ["decision_criteria", "paper_process"]
    assert "decision_criteria" in finding.message and "Negotiation" in finding.message


@pytest.mark.parametrize("junk", ["tbd", "N/A", ".", "asdf", "xxxx", "???", "-", "x"])
def test_junk_values_in_required_fields(junk: str) -> None:
    result = found(healthy(champion=junk))
    assert result["stage_gate_junk_values"].details["junk_fields"] == ["champion"]
    assert "stage_gate_missing_fields" not in result


def test_placeholder_close_date_is_junk_not_parked() -> None:
    result = found(healthy(close_date="2099-12-31"))
    assert result["stage_gate_junk_values"].details["junk_fields"] == ["close_date"]
    assert "parked_close_date" not in result


def test_real_short_values_are_not_junk() -> None:
    assert "stage_gate_junk_values" not in found(healthy(competition="SAP", metrics="ROI 3x"))


def test_stale_no_activity_uses_the_stage_limit() -> None:
    # Negotiation allows 5 idle days; the deal was created on day 0, no activity since.
    assert "stale_no_activity" not in found(healthy(), now_days=5.5)
    result = found(healthy(), now_days=6.5)
    assert result["stale_no_activity"].details == {
        "days_without_activity": 6, "last_activity": "2026-01-05", "limit_days": 5}


def test_activity_resets_staleness() -> None:
    result = found(healthy(), change(6, op="activity"), now_days=7)
    assert "stale_no_activity" not in result


def test_last_activity_date_field_counts_as_activity() -> None:
    result = found(healthy(), change(1, last_activity_date="2026-01-11"), now_days=7)
    assert "stale_no_activity" not in result


def test_stale_close_out_supersedes_no_activity() -> None:
    result = found(healthy(next_meeting_date="2026-12-01", close_date="2026-09-30",
                           next_step_date="2026-12-01"), now_days=61)
    assert "stale_close_out" in result
    assert "stale_no_activity" not in result


def test_too_long_in_stage_counts_from_stage_entry() -> None:
    changes = [change(0, **HEALTHY_DISCOVERY), change(10, stage="Solution", champion="C",
                                                      economic_buyer="E",
                                                      next_meeting_date="2026-06-01")]
    # Solution allows 45 days in stage; entered on day 10.
    assert "stale_in_stage" not in found(*changes, change(50, op="activity"), now_days=54)
    result = found(*changes, change(55, op="activity"), now_days=56)
    assert result["stale_in_stage"].details["days_in_stage"] == 46


def test_close_date_in_the_past() -> None:
    result = found(healthy(close_date="2026-01-04"))
    assert result["close_date_past"].details == {"close_date": "2026-01-04"}


def test_close_date_slipping_by_count() -> None:
    pushes = [change(i, close_date=d) for i, d in
              enumerate(["2026-03-01", "2026-03-08", "2026-03-15", "2026-03-22"], start=1)]
    result = found(healthy(close_date="2026-02-28"), *pushes, now_days=5)
    assert result["close_date_slipping"].details == {"pushes": 4, "slip_days": 22}


def test_close_date_slipping_by_days() -> None:
    result = found(healthy(close_date="2026-02-01"), change(1, close_date="2026-04-01"))
    assert result["close_date_slipping"].details == {"pushes": 1, "slip_days": 59}


def test_close_date_pulled_in_is_not_a_slip() -> None:
    result = found(healthy(close_date="2026-03-01"), change(1, close_date="2026-02-15"))
    assert "close_date_slipping" not in result


def test_next_meeting_missing_or_past() -> None:
    assert "next_meeting_missing" in found(healthy(next_meeting_date=None))
    past = found(healthy(next_meeting_date="2026-01-05"), now_days=3)
    assert past["next_meeting_missing"].details == {"next_meeting_date": "2026-01-05"}
    # Not required before Solution.
    assert "next_meeting_missing" not in found(change(0, **HEALTHY_DISCOVERY))


def test_forecast_category_commit_in_early_stage() -> None:
    result = found(change(0, **{**HEALTHY_DISCOVERY, "forecast_category": "Commit"}))
    assert result["forecast_category_mismatch"].details["forecast_category"] == "Commit"


def test_forecast_category_vendor_spellings_are_standardized() -> None:
    assert "forecast_category_mismatch" not in found(healthy(forecast_category="Forecast"))
    result = found(change(0, **{**HEALTHY_DISCOVERY, "forecast_category": "BEST_CASE"}))
    assert result["forecast_category_mismatch"].details["forecast_category"] == "Best Case"


def test_open_deal_marked_closed() -> None:
    assert "forecast_category_mismatch" in found(healthy(forecast_category="Closed"))


@pytest.mark.parametrize("amount", [None, 0.0, -500.0])
def test_amount_invalid_from_solution(amount: float | None) -> None:
    result = found(healthy(amount=amount))
    assert result["amount_invalid"].details == {"amount": amount}
    assert "stage_gate_missing_fields" not in result  # one problem, one alert


def test_next_step_missing_or_expired() -> None:
    assert "next_step_missing" in found(healthy(next_step=None))
    expired = found(healthy(next_step_date="2026-01-06"), now_days=3)
    assert expired["next_step_missing"].details["next_step_date"] == "2026-01-06"


def test_single_threaded_big_deal() -> None:
    big = change(0, **{**HEALTHY_NEGOTIATION, "amount": 250000.0}, contacts=["003A"])
    assert found(big)["single_threaded"].details == {"engaged_contacts": 1, "min_contacts": 2}
    assert "single_threaded" not in found(big, change(0.5, op="activity", contacts=["003B"]))
    assert "single_threaded" not in found(healthy(amount=99999.0, contact_count=None))


def test_contact_count_field_counts_engaged_contacts() -> None:
    big = change(0, **{**HEALTHY_NEGOTIATION, "amount": 250000.0, "contact_count": 3})
    assert "single_threaded" not in found(big)


def test_parked_close_date() -> None:
    result = found(healthy(close_date="2026-12-31"))
    assert result["parked_close_date"].details["horizon_days"] == 270
    assert "parked_close_date" not in found(healthy(close_date="2026-09-01"))


def test_closed_deals_are_left_alone() -> None:
    assert found(healthy(stage="Closed Won", close_date="2025-01-01", next_step=None)) == {}


def test_unknown_stage_is_reported() -> None:
    result = found(healthy(stage="Verbal Yes"))
    assert set(result) == {"unknown_stage"}


def test_gap_requires_resync_until_a_full_record() -> None:
    gap = change(1, op="gap")
    assert "resync_required" in found(healthy(), gap)
    full = change(2, **HEALTHY_NEGOTIATION, contacts=["003A", "003B"])
    full = full.model_copy(update={"full": True})
    assert "resync_required" not in found(healthy(), gap, full, now_days=2)


def test_deleted_deals_have_no_findings() -> None:
    assert found(healthy(amount=None), change(1, op="delete")) == {}


def test_disabled_rules_and_severity_overrides() -> None:
    rules = default_rules()
    renewals = rules.pipeline_for("Renewal")
    assert renewals.id == "renewals"
    assert renewals.severity_of("stale_in_stage") == "low"
    assert rules.default_pipeline.severity_of("stale_in_stage") == "medium"


@pytest.mark.parametrize(
    ("overrides", "due_days", "rule"),
    [
        # Negotiation: 5 idle days allowed -> due at day 6 (created day 0).
        ({}, 6, "stale_no_activity"),
        ({"close_date": "2026-01-07"}, 3, "close_date_past"),
        ({"next_meeting_date": "2026-01-06"}, 2, "next_meeting_missing"),
        ({"next_step_date": "2026-01-08"}, 4, "next_step_missing"),
    ],
)
def test_next_due_names_the_moment_a_time_driven_rule_fires(
    overrides: dict[str, Any], due_days: int, rule: str
) -> None:
    state = run(healthy(**overrides))
    now = ms(0)
    due = ENGINE.next_due(state, now)
    assert due is not None
    assert ENGINE.findings(state, due - 1) == {}
    assert rule in ENGINE.findings(state, due)
    # Day boundaries: dates flip at midnight UTC, idle time counts from creation.
    assert due - ms(0) <= due_days * 86_400_000


def test_next_due_for_parked_close_dates_and_closed_deals() -> None:
    state = run(healthy(close_date="2026-12-31"))
    assert "parked_close_date" in ENGINE.findings(state, ms(0))
    # Walk the due times: the one at which the date enters the horizon exists.
    moments = []
    due = ENGINE.next_due(state, ms(0))
    while due is not None and len(moments) < 20:
        moments.append(due)
        due = ENGINE.next_due(state, due)
    cleared = [m for m in moments if "parked_close_date" not in ENGINE.findings(state, m)]
    assert cleared and "parked_close_date" in ENGINE.findings(state, cleared[0] - 1)
    assert ENGINE.next_due(run(healthy(stage="Closed Won")), ms(0)) is None


def test_dates_are_days_on_the_teams_calendar() -> None:
    """A deal closing on January 7: at 9 pm that day in New York (2 am on the
    8th in UTC) its close date has passed in UTC, not in New York."""
    new_york = Engine(default_rules().model_copy(update={"timezone": "America/New_York"}))
    state = run(healthy(close_date="2026-01-07"))
    evening = ms(2) + 17 * 3_600_000  # 2026-01-08T02:00Z
    assert "close_date_past" in ENGINE.findings(state, evening)
    assert "close_date_past" not in new_york.findings(state, evening)
    assert "close_date_past" in new_york.findings(state, evening + 4 * 3_600_000)
    # The sweep comes back when the day ends where the team is.
    assert new_york.next_due(state, evening) == ms(3) - 9 * 3_600_000 + 5 * 3_600_000
