//! One opportunity's state (schemas/state.py) and what is cached beside it.

use crate::names::Name;
use crate::timeline::Walk;
use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;
use serde_json::Value;

pub type Fields = IndexMap<Name, Value, FxBuildHasher>;
pub type Keyed<V> = IndexMap<String, V, FxBuildHasher>;

/// (order stamp, event id, tracked values carried by that event).
#[derive(Clone)]
pub struct Observation {
    pub stamp: i64,
    pub event_id: String,
    pub values: Fields,
}

/// Derived data kept in memory only: it can save work, never change a result.
#[derive(Default)]
pub struct Memo {
    pub walk: Option<Walk>,
    /// (time of the last evaluation, when a time-driven verdict can next change).
    pub evaluated: Option<(i64, Option<i64>)>,
}

#[derive(Default)]
pub struct OpportunityState {
    pub opportunity_id: String,
    pub fields: Fields,
    pub stamps: IndexMap<Name, i64, FxBuildHasher>,
    pub timeline: Vec<Observation>,
    pub base: Fields,
    pub base_stamp: i64,
    pub stage_entered_ms: Option<i64>,
    pub close_pushes: i64,
    pub close_slip_days: i64,
    pub last_activity_ms: Option<i64>,
    pub contacts: Vec<String>,
    pub created_ms: Option<i64>,
    pub high_water_ms: i64,
    pub gap_stamp: i64,
    pub full_stamp: i64,
    pub merged_into: Option<String>,
    /// When a sweep next needs the state: set by the stream when it stores
    /// the state (`shell::next_due`), carried through the stored form.
    pub next_due_ms: Option<i64>,
    pub open_alerts: Keyed<i64>,
    pub memo: Memo,
}

impl OpportunityState {
    pub fn new(opportunity_id: &str) -> Self {
        OpportunityState {
            opportunity_id: opportunity_id.to_owned(),
            ..Default::default()
        }
    }

    pub fn needs_resync(&self) -> bool {
        self.gap_stamp > self.full_stamp
    }

    pub fn last_touch_ms(&self) -> Option<i64> {
        self.last_activity_ms.or(self.created_ms)
    }
}

/// A field's value as Python's `dict.get` sees it, with JSON null as absent
/// (a walk's values keep cleared fields as None, which reads the same).
pub fn get(values: &Fields, name: Name) -> Option<&Value> {
    values.get(&name).filter(|v| !v.is_null())
}

pub fn text(values: &Fields, name: Name) -> Option<&str> {
    values.get(&name).and_then(Value::as_str)
}
