//! The stage gate (processor/rules/gate.py): which entry criteria of a stage
//! are missing or filler.

use crate::junk::{is_blank, JunkDetector};
use crate::rules::Pipeline;
use crate::state::Fields;

const OWN_RULE_FIELDS: [(&str, &str); 3] = [
    ("amount", "amount_invalid"),
    ("next_step", "next_step_missing"),
    ("next_meeting_date", "next_meeting_missing"),
];

pub struct GateVerdict<'a> {
    pub missing: Vec<&'a str>,
    pub junk: Vec<&'a str>,
}

pub fn rule_applies(pipeline: &Pipeline, position: usize, rule_id: &str) -> bool {
    pipeline
        .rule_start(rule_id)
        .is_some_and(|start| position >= start)
}

/// Fields a dedicated rule reports at this stage (one problem, one alert).
pub fn fields_with_own_rule(pipeline: &Pipeline, position: usize) -> Vec<&'static str> {
    OWN_RULE_FIELDS
        .iter()
        .filter(|(_, rule)| pipeline.enabled(rule) && rule_applies(pipeline, position, rule))
        .map(|(name, _)| *name)
        .collect()
}

pub fn check_gate<'a>(
    pipeline: &'a Pipeline,
    position: usize,
    values: &Fields,
    junk: &JunkDetector,
) -> GateVerdict<'a> {
    let mut verdict = GateVerdict {
        missing: Vec::new(),
        junk: Vec::new(),
    };
    if pipeline.stages[position].closed {
        return verdict;
    }
    for name in &pipeline.required_by_position[position] {
        let value = values.get(name.as_str());
        if is_blank(value) {
            verdict.missing.push(name);
        } else if name != "amount" && value.is_some_and(|v| junk.is_junk(name, v)) {
            verdict.junk.push(name);
        }
    }
    verdict
}
