//! The stage gate (processor/rules/gate.py): which entry criteria of a stage
//! are missing or filler.

use crate::junk::{is_blank, JunkDetector};
use crate::names::{self, Name};
use crate::rules::Pipeline;
use crate::state::Fields;

const OWN_RULE_FIELDS: [(Name, &str); 3] = [
    (names::AMOUNT, "amount_invalid"),
    (names::NEXT_STEP, "next_step_missing"),
    (names::NEXT_MEETING_DATE, "next_meeting_missing"),
];

pub struct GateVerdict {
    pub missing: Vec<Name>,
    pub junk: Vec<Name>,
}

pub fn rule_applies(pipeline: &Pipeline, position: usize, rule_id: &str) -> bool {
    pipeline
        .rule_start(rule_id)
        .is_some_and(|start| position >= start)
}

/// Fields a dedicated rule reports at this stage (one problem, one alert).
pub fn fields_with_own_rule(pipeline: &Pipeline, position: usize) -> Vec<Name> {
    OWN_RULE_FIELDS
        .iter()
        .filter(|(_, rule)| pipeline.enabled(rule) && rule_applies(pipeline, position, rule))
        .map(|(name, _)| *name)
        .collect()
}

pub fn check_gate(
    pipeline: &Pipeline,
    position: usize,
    values: &Fields,
    junk: &JunkDetector,
) -> GateVerdict {
    let mut verdict = GateVerdict {
        missing: Vec::new(),
        junk: Vec::new(),
    };
    if pipeline.stages[position].closed {
        return verdict;
    }
    for name in &pipeline.required_by_position[position] {
        let value = values.get(name);
        if is_blank(value) {
            verdict.missing.push(*name);
        } else if *name != names::AMOUNT && value.is_some_and(|v| junk.is_junk(*name, v)) {
            verdict.junk.push(*name);
        }
    }
    verdict
}
