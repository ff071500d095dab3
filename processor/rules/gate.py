"""The stage gate: which of a stage's entry criteria are missing or filler.

One definition serves two callers: the rules engine (the
``stage_gate_*`` checks on the stage a deal is in) and the HTTP stage-gate
check a CRM calls before it saves a move (the stage a deal is about to
enter). Both must give the same verdict on the same values, or a move the
API let through would be alerted on a moment later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processor.core import fields as f
from processor.rules.config import Pipeline
from processor.rules.junk import JunkDetector, is_blank

OWN_RULE_FIELDS: dict[str, str] = {
    f.AMOUNT: "amount_invalid",
    f.NEXT_STEP: "next_step_missing",
    f.NEXT_MEETING_DATE: "next_meeting_missing",
}
"""Fields a dedicated rule watches from some stage on; the engine reports such
a field under that rule instead of as a missing gate field (one problem, one
alert)."""


@dataclass(frozen=True, slots=True)
class GateVerdict:
    required: tuple[str, ...]
    missing: tuple[str, ...]
    """Required and blank, in the order the rules file requires them."""
    junk: tuple[str, ...]
    """Required and filled with filler (``tbd``, a placeholder date...)."""

    @property
    def passed(self) -> bool:
        return not self.missing and not self.junk


_OPEN = GateVerdict((), (), ())


def rule_applies(pipeline: Pipeline, position: int, rule_id: str) -> bool:
    """Whether a stage-bound rule (amount, next step, next meeting) applies
    at this stage position."""
    start = pipeline.rule_start[rule_id]
    return start is not None and position >= start


def fields_with_own_rule(pipeline: Pipeline, position: int) -> dict[str, str]:
    """Field -> the dedicated rule that reports it at this stage position."""
    return {
        name: rule for name, rule in OWN_RULE_FIELDS.items()
        if pipeline.enabled(rule) and rule_applies(pipeline, position, rule)
    }


def check_gate(
    pipeline: Pipeline, position: int, values: Mapping[str, Any], junk: JunkDetector
) -> GateVerdict:
    """The gate of the stage at ``position`` over canonical field values.
    Closed stages have no gate: a deal may always be closed. The amount is
    never judged as filler (a zero amount is ``amount_invalid``'s business)."""
    if pipeline.stages[position].closed:
        return _OPEN
    required = pipeline.required_by_position[position]
    if not required:
        return _OPEN
    missing: list[str] = []
    filler: list[str] = []
    for name in required:
        value = values.get(name)
        if is_blank(value):
            missing.append(name)
        elif name != f.AMOUNT and junk.is_junk(name, value):
            filler.append(name)
    return GateVerdict(required, tuple(missing), tuple(filler))


def requiring_stage(pipeline: Pipeline, position: int, name: str) -> str:
    """The stage whose entry criteria first ask for ``name`` on the way to
    the stage at ``position`` (requirements are cumulative by default)."""
    if pipeline.cumulative_requirements:
        for stage in pipeline.stages[: position + 1]:
            if not stage.closed and name in stage.requires:
                return stage.name
    return pipeline.stages[position].name
