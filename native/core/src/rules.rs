//! The rule set, read from the JSON that processor/rules/export.py writes.
//!
//! Spelling lookups arrive already case-folded by Python, so only the value
//! looked up is folded here.

use crate::clock::Days;
use crate::junk::JunkDetector;
use crate::names::{self, Name};
use crate::pyvalue::casefold;
use rustc_hash::FxHashMap as HashMap;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub struct Stage {
    pub name: String,
    pub forecast_category: String,
    pub allowed_forecast_categories: Option<Vec<String>>,
    pub stale_after_days: Option<i64>,
    pub max_days_in_stage: Option<i64>,
    pub closed: bool,
    pub won: bool,
}

#[derive(Deserialize)]
pub struct CloseDateSlip {
    pub max_pushes: i64,
    pub max_days: i64,
}

#[derive(Deserialize)]
pub struct SingleThreaded {
    pub min_amount: f64,
    pub min_contacts: i64,
}

#[derive(Deserialize)]
pub struct Thresholds {
    pub close_date_slip: CloseDateSlip,
    pub parked_close_date_days: i64,
    pub single_threaded: SingleThreaded,
    pub close_out_no_activity_days: i64,
    pub default_stale_after_days: Option<i64>,
}

#[derive(Deserialize)]
pub struct Pipeline {
    pub id: String,
    pub stages: Vec<Stage>,
    stage_index: HashMap<String, usize>,
    pub required_by_position: Vec<Vec<Name>>,
    rule_start: HashMap<String, Option<usize>>,
    pub close_out_stage: String,
    severity: HashMap<String, String>,
    disabled_rules: Vec<String>,
    pub thresholds: Thresholds,
}

impl Pipeline {
    pub fn stage_position(&self, raw: Option<&str>) -> Option<usize> {
        let raw = raw?;
        if let Some(&position) = self.stage_index.get(raw) {
            if raw.bytes().all(|b| !b.is_ascii_uppercase()) && raw.is_ascii() {
                return Some(position);
            }
        }
        self.stage_index.get(&casefold(raw)).copied()
    }

    pub fn position_of(&self, name: Option<&str>) -> Option<usize> {
        self.stage_position(name)
    }

    /// The rules file's name for a stage spelling (unknown ones as they are).
    pub fn canonical_stage(&self, raw: Option<&str>) -> Option<String> {
        match self.stage_position(raw) {
            Some(position) => Some(self.stages[position].name.clone()),
            None => raw.map(str::to_owned),
        }
    }

    pub fn rule_start(&self, rule_id: &str) -> Option<usize> {
        self.rule_start.get(rule_id).copied().flatten()
    }

    pub fn severity_of(&self, rule_id: &str) -> &str {
        self.severity.get(rule_id).map_or("medium", String::as_str)
    }

    pub fn enabled(&self, rule_id: &str) -> bool {
        !self.disabled_rules.iter().any(|r| r == rule_id)
    }
}

#[derive(Deserialize)]
struct JunkPolicy {
    values: Vec<String>,
    patterns: Vec<String>,
    placeholder_dates: Vec<String>,
    min_length: usize,
}

#[derive(Deserialize)]
struct Exported {
    version: String,
    timezone: String,
    junk: JunkPolicy,
    category_lookup: HashMap<String, String>,
    owner_managers: HashMap<String, String>,
    pipelines: Vec<Pipeline>,
    pipeline_by_match: HashMap<String, usize>,
    default_pipeline: usize,
}

pub struct RuleSet {
    pub version: String,
    pub days: Days,
    pub junk: JunkDetector,
    category_lookup: HashMap<String, String>,
    owner_managers: HashMap<String, String>,
    pub pipelines: Vec<Pipeline>,
    pipeline_by_match: HashMap<String, usize>,
    default_pipeline: usize,
}

impl RuleSet {
    pub fn from_json(raw: &[u8]) -> Result<Self, String> {
        let exported: Exported =
            serde_json::from_slice(raw).map_err(|e| format!("rules JSON: {e}"))?;
        if exported.pipelines.is_empty() || exported.default_pipeline >= exported.pipelines.len() {
            return Err("rules JSON: no pipeline, or the default is not one".into());
        }
        let junk = JunkDetector::new(
            exported.junk.values,
            &exported.junk.patterns,
            exported.junk.placeholder_dates,
            exported.junk.min_length,
        )?;
        Ok(RuleSet {
            version: exported.version,
            days: Days::new(&exported.timezone)?,
            junk,
            category_lookup: exported.category_lookup,
            owner_managers: exported.owner_managers,
            pipelines: exported.pipelines,
            pipeline_by_match: exported.pipeline_by_match,
            default_pipeline: exported.default_pipeline,
        })
    }

    /// A non-string pipeline value would raise in Python; here it falls back
    /// to the default pipeline.
    pub fn pipeline_for(&self, value: Option<&Value>) -> &Pipeline {
        let index = match value {
            Some(Value::String(s)) => self
                .pipeline_by_match
                .get(&casefold(s))
                .copied()
                .unwrap_or(self.default_pipeline),
            _ => self.default_pipeline,
        };
        &self.pipelines[index]
    }

    pub fn standard_category(&self, raw: Option<&Value>) -> Option<&str> {
        match raw {
            Some(Value::String(s)) => self.category_lookup.get(&casefold(s)).map(String::as_str),
            _ => None,
        }
    }

    /// The deal's manager: its own field, else its owner's from the rules.
    pub fn manager_of(&self, values: &crate::state::Fields) -> Option<String> {
        if let Some(manager) = values.get(&names::MANAGER_ID) {
            if crate::pyvalue::truthy(manager) {
                return Some(crate::pyvalue::str_of(manager));
            }
        }
        match values.get(&names::OWNER_ID) {
            Some(Value::String(owner)) => self.owner_managers.get(owner).cloned(),
            _ => None,
        }
    }
}
