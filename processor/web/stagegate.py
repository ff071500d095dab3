"""The stage-gate check a CRM calls before it saves a stage move: pure.

The request's fields are laid over what the worker has stored for the
opportunity (a hook often sends only what the form changed), and the proposed
stage's gate is judged with the rules engine's own gate
(``processor.rules.gate``), including its rule switches: a field is refused
exactly when the stream would raise an alert for it once the move is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from processor.core import fields as f
from processor.rules.config import RuleSet
from processor.rules.gate import check_gate, fields_with_own_rule, requiring_stage
from processor.sources.mapping import FieldMappings, map_values
from processor.web.models import FieldValue, GateField, JunkField, StageGateRequest, StageGateResult
from schemas import OpportunityState

StoredState = Literal["merged", "none", "unavailable"]

MISSING_RULE = "stage_gate_missing_fields"
JUNK_RULE = "stage_gate_junk_values"


def canonical_fields(
    raw: Mapping[str, FieldValue], mappings: FieldMappings
) -> tuple[dict[str, Any], list[str]]:
    """Vendor or canonical names -> canonical (set values, cleared names), with
    the same coercion the sources apply (dates to ISO days, numbers to floats).
    Raises ``CoercionError`` for a value that cannot be read as its type."""
    return map_values(raw, mappings.bulk_columns, keep_unmapped=True)


def merged_values(
    request: StageGateRequest, stored: OpportunityState | None, mappings: FieldMappings
) -> dict[str, Any]:
    values = dict(stored.fields) if stored is not None else {}
    given, cleared = canonical_fields(request.fields, mappings)
    values.update(given)
    for name in cleared:
        values[name] = None
    return values


def check_move(
    rules: RuleSet,
    mappings: FieldMappings,
    request: StageGateRequest,
    stored: OpportunityState | None,
    stored_state: StoredState,
) -> StageGateResult:
    values = merged_values(request, stored, mappings)
    pipeline = rules.pipeline_for(request.pipeline or values.get(f.PIPELINE))
    position = pipeline.stage_position(request.stage)
    base: dict[str, Any] = {
        "opportunity_id": request.opportunity_id, "pipeline": pipeline.id,
        "stored_state": stored_state, "ruleset_version": rules.version,
    }
    if position is None:
        return StageGateResult(
            passed=False, stage=request.stage, stage_known=False, required_fields=[],
            missing_fields=[], junk_fields=[],
            message=f"{request.stage!r} is not a stage of the {pipeline.id} pipeline.",
            **base,
        )
    stage = pipeline.stages[position].name
    verdict = check_gate(pipeline, position, values, rules.junk_detector)
    owned = fields_with_own_rule(pipeline, position)
    missing = [
        GateField(field=name, required_by_stage=requiring_stage(pipeline, position, name),
                  stream_rule=owned.get(name, MISSING_RULE))
        for name in verdict.missing
    ]
    missing = [m for m in missing if pipeline.enabled(m.stream_rule)]
    junk = [
        JunkField(field=name, required_by_stage=requiring_stage(pipeline, position, name),
                  stream_rule=JUNK_RULE, value=values[name])
        for name in verdict.junk
    ] if pipeline.enabled(JUNK_RULE) else []
    passed = not missing and not junk
    return StageGateResult(
        passed=passed, stage=stage, stage_known=True,
        required_fields=list(verdict.required), missing_fields=missing, junk_fields=junk,
        message=_message(stage, missing, junk), **base,
    )


def _message(stage: str, missing: list[GateField], junk: list[JunkField]) -> str:
    if not missing and not junk:
        return f"The move to {stage} passes its gate."
    parts = []
    if missing:
        parts.append("fill in " + ", ".join(m.field for m in missing))
    if junk:
        parts.append("replace the placeholder in "
                     + ", ".join(f"{j.field} ({j.value!r})" for j in junk))
    return f"{stage} needs more: " + "; ".join(parts) + "."
