"""The stage-gate check, pure: what a CRM's before-save hook is told.

The property test holds the check to the rules engine: for any mix of
missing, blank, filler and real values, the fields the check refuses (and
the rule it says the stream would raise) are exactly the gate findings the
engine produces once the deal sits in that stage. The dedicated rules'
conditions beyond the gate (an amount of zero, a next meeting in the past)
are theirs, judged against the clock, and not part of the check.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core import fields as f
from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.rules import default_rules
from processor.rules.checks import evaluate
from processor.rules.config import Pipeline
from processor.rules.gate import OWN_RULE_FIELDS, check_gate, requiring_stage
from processor.rules.junk import is_blank
from processor.sources.mapping import CoercionError, FieldMappings
from processor.web.models import StageGateRequest
from processor.web.stagegate import check_move
from schemas import OpportunityState
from tests.builders import HEALTHY_DISCOVERY, at, change

RULES = default_rules()
MAPPINGS = FieldMappings()
NOW = to_ms(at(1))
NEW_BUSINESS = RULES.pipeline_for("New Business")


def ask(stage: str, stored: OpportunityState | None = None, /, **fields: Any) -> Any:
    request = StageGateRequest(opportunity_id="006A", stage=stage, fields=fields)
    return check_move(RULES, MAPPINGS, request, stored, "merged" if stored else "none")


def stored(**fields: Any) -> OpportunityState:
    state, _ = Engine(RULES).apply(None, change(0, **fields))
    return state


# ---- examples -------------------------------------------------------------------------


def test_a_qualified_move_passes() -> None:
    result = ask("Discovery", identify_pain="Slow close", metrics="ROI 3x",
                 next_step="Demo Tuesday")
    assert result.passed
    assert result.required_fields == ["identify_pain", "metrics", "next_step"]
    assert result.message == "The move to Discovery passes its gate."


def test_missing_fields_name_the_stage_that_requires_them_and_the_rule() -> None:
    result = ask("Solution", identify_pain="Slow close", metrics="ROI 3x", next_step="Demo",
                 champion="Dana")
    assert not result.passed
    assert [(m.field, m.required_by_stage, m.stream_rule) for m in result.missing_fields] == [
        ("economic_buyer", "Solution", "stage_gate_missing_fields"),
        ("amount", "Solution", "amount_invalid"),
        ("next_meeting_date", "Solution", "next_meeting_missing"),
    ]
    assert "economic_buyer" in result.message


def test_filler_is_refused_with_its_value() -> None:
    result = ask("Discovery", identify_pain="tbd", metrics="asdfgh", next_step="Demo")
    assert [(j.field, j.value, j.required_by_stage) for j in result.junk_fields] == [
        ("identify_pain", "tbd", "Discovery"), ("metrics", "asdfgh", "Discovery")]
    assert result.missing_fields == []
    assert not result.passed


def test_a_placeholder_close_date_is_filler() -> None:
    base = {**HEALTHY_DISCOVERY, "champion": "Dana", "economic_buyer": "Sam",
            "next_meeting_date": "2026-02-01", "decision_criteria": "SSO",
            "decision_process": "CFO signs"}
    result = ask("Proposal", **{**base, "close_date": "2099-12-31"})
    assert [j.field for j in result.junk_fields] == ["close_date"]
    assert ask("Proposal", **base).passed


def test_stored_state_fills_what_the_request_leaves_out() -> None:
    state = stored(**HEALTHY_DISCOVERY)
    assert not ask("Discovery").passed
    result = ask("Discovery", state)
    assert result.passed and result.stored_state == "merged"


def test_request_values_override_stored_ones_and_null_clears() -> None:
    state = stored(**HEALTHY_DISCOVERY)
    result = ask("Discovery", state, metrics="n/a", next_step=None)
    assert [j.field for j in result.junk_fields] == ["metrics"]
    assert [m.field for m in result.missing_fields] == ["next_step"]


def test_vendor_field_names_are_mapped_and_values_coerced() -> None:
    result = ask("Proposal/Price Quote", Identify_Pain__c="Slow close", Metrics__c="ROI",
                 NextStep="Demo", Champion__c="Dana", Economic_Buyer__c="Sam",
                 Amount="120000", Next_Meeting_Date__c="2026-02-01T10:00:00Z",
                 Decision_Criteria__c="SSO", Decision_Process__c="CFO signs",
                 CloseDate=1_790_000_000_000)
    assert result.stage == "Proposal"
    assert result.passed, result.message


def test_an_unreadable_value_is_an_error_not_a_verdict() -> None:
    with pytest.raises(CoercionError):
        ask("Discovery", close_date="next quarter")


def test_aliases_pipelines_and_closed_stages() -> None:
    assert ask("qualifiedtobuy").stage == "Discovery"
    renewal = StageGateRequest(opportunity_id="r1", stage="Engaged", pipeline="renewals")
    result = check_move(RULES, MAPPINGS, renewal, None, "none")
    assert (result.pipeline, [m.field for m in result.missing_fields]) == (
        "renewals", ["next_step"])
    assert ask("Closed Lost").passed
    assert ask("closedwon").passed


def test_an_unknown_stage_does_not_pass() -> None:
    result = ask("Verbal Yes")
    assert not result.passed and not result.stage_known
    assert "not a stage" in result.message


def test_requirements_accumulate_along_the_pipeline() -> None:
    negotiation = NEW_BUSINESS.position_of("Negotiation")
    assert negotiation is not None
    assert requiring_stage(NEW_BUSINESS, negotiation, "metrics") == "Discovery"
    assert requiring_stage(NEW_BUSINESS, negotiation, "competition") == "Negotiation"


# ---- the check and the engine agree ---------------------------------------------------

TEXT = st.sampled_from([None, "", "   ", "Sam Lee, CFO", "ROI 3x", "tbd", "n/a", "xxxx", "?"])
DATE = st.sampled_from([None, "2026-06-30", "2099-12-31", "1970-01-01"])
AMOUNT = st.sampled_from([None, 150_000.0, 20_000.0])


def _value(name: str) -> st.SearchStrategy[Any]:
    if name in f.DATE_FIELDS:
        return DATE
    if name == f.AMOUNT:
        return AMOUNT
    return TEXT


@st.composite
def gate_cases(draw: st.DrawFn) -> tuple[Pipeline, str, dict[str, Any]]:
    pipeline = draw(st.sampled_from(RULES.pipelines))
    stage = draw(st.sampled_from([s for s in pipeline.stages if not s.closed]))
    position = pipeline.stages.index(stage)
    values = {name: draw(_value(name)) for name in pipeline.required_by_position[position]}
    return pipeline, stage.name, values


@settings(max_examples=300, deadline=None)
@given(gate_cases())
def test_the_check_refuses_exactly_what_the_engine_alerts_on(
    case: tuple[Pipeline, str, dict[str, Any]],
) -> None:
    pipeline, stage, values = case
    given_fields = {k: v for k, v in values.items() if v is not None}
    state = OpportunityState(
        opportunity_id="006A",
        fields={f.STAGE: stage, f.PIPELINE: pipeline.match[0] if pipeline.match else pipeline.id,
                **given_fields},
        created_ms=NOW, last_activity_ms=NOW, high_water_ms=NOW,
    )
    findings = evaluate(state, RULES, NOW)
    expected_missing = {
        (name, "stage_gate_missing_fields")
        for name in (findings["stage_gate_missing_fields"].details["missing_fields"]
                     if "stage_gate_missing_fields" in findings else [])
    } | {(name, rule) for name, rule in OWN_RULE_FIELDS.items()
         if rule in findings and name in values and is_blank(values[name])}
    expected_junk = set(findings["stage_gate_junk_values"].details["junk_fields"]
                        if "stage_gate_junk_values" in findings else [])

    request = StageGateRequest(opportunity_id="006A", stage=stage, pipeline=pipeline.id,
                               fields=values)
    result = check_move(RULES, MAPPINGS, request, None, "none")
    assert {(m.field, m.stream_rule) for m in result.missing_fields} == expected_missing
    assert {j.field for j in result.junk_fields} == expected_junk
    assert result.passed == (not expected_missing and not expected_junk)


def test_the_gate_function_is_the_one_the_engine_uses() -> None:
    """The engine's gate findings come from ``check_gate``: a verdict on the
    same values names the same fields."""
    position = NEW_BUSINESS.position_of("Discovery")
    assert position is not None
    values = {"identify_pain": "tbd", "metrics": None, "next_step": "Demo"}
    verdict = check_gate(NEW_BUSINESS, position, values, RULES.junk_detector)
    state = OpportunityState(opportunity_id="x", fields={"stage": "Discovery", **values},
                             created_ms=NOW, last_activity_ms=NOW, high_water_ms=NOW)
    findings = evaluate(state, RULES, NOW)
    assert list(verdict.missing) == findings["stage_gate_missing_fields"].details[
        "missing_fields"]
    assert list(verdict.junk) == findings["stage_gate_junk_values"].details["junk_fields"]
