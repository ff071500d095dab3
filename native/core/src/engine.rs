//! Applying changes and the passage of time to one opportunity's state
//! (processor/core/engine.py): `apply` and `sweep` are the only two ways
//! state moves, and neither reads a clock.

use crate::alerts::{build_alert, build_close_out, build_resolution, history_record};
use crate::checks::{self, evaluate, field_groups, group_of, next_due, Finding, Groups};
use crate::clock::{order_stamp, parse_occurred_ms};
use crate::names::{self, Name};
use crate::pyvalue;
use crate::rules::{Pipeline, RuleSet};
use crate::state::{get, text, Fields, OpportunityState};
use crate::timeline::{self, Transition};
use rustc_hash::FxHashMap as HashMap;
use serde::Deserialize;
use serde_json::{json, Value};

const CONTACTS_CAP: usize = 20;
const TRACKED: [Name; 8] = [
    names::STAGE,
    names::AMOUNT,
    names::CURRENCY,
    names::CLOSE_DATE,
    names::FORECAST_CATEGORY,
    names::OWNER_ID,
    names::PIPELINE,
    names::DELETED,
];

/// One OpportunityChange as `orjson.dumps(change.__dict__)` writes it.
#[derive(Deserialize)]
pub struct Change {
    pub event_id: String,
    pub opportunity_id: String,
    pub occurred_at: String,
    /// Epoch microseconds when the decoders already know them (then
    /// `occurred_at` is left empty: nothing else reads it).
    #[serde(skip)]
    pub occurred_us: Option<i64>,
    #[serde(default)]
    pub sequence: i64,
    pub op: String,
    #[serde(default)]
    pub fields: Fields,
    #[serde(default)]
    pub nulled_fields: Vec<Name>,
    #[serde(default)]
    pub full: bool,
    #[serde(default)]
    pub contact_ids: Vec<String>,
    #[serde(default)]
    pub merged_into: Option<String>,
}

#[derive(Default)]
pub struct Outcome {
    /// Each record's JSON, as published.
    pub alerts: Vec<Vec<u8>>,
    pub history: Vec<Vec<u8>>,
    pub commands: Vec<Vec<u8>>,
}

/// State attributes (not fields) that checks read, as bits.
mod attr {
    pub const LAST_ACTIVITY: u16 = 1;
    pub const CREATED: u16 = 1 << 1;
    pub const CONTACTS: u16 = 1 << 2;
    pub const STAGE_ENTERED: u16 = 1 << 3;
    pub const CLOSE_PUSHES: u16 = 1 << 4;
    pub const CLOSE_SLIP: u16 = 1 << 5;
    pub const GAP: u16 = 1 << 6;
    pub const FULL: u16 = 1 << 7;
    pub const MERGED: u16 = 1 << 8;
    pub const HIGH_WATER: u16 = 1 << 9;
    pub const STRUCTURAL: u16 = GAP | FULL | MERGED;
}

fn attribute_groups(touched: u16) -> Groups {
    let mut groups = 0;
    if touched & (attr::LAST_ACTIVITY | attr::CREATED) != 0 {
        groups |= checks::ACTIVITY;
    }
    if touched & attr::CONTACTS != 0 {
        groups |= checks::THREADING;
    }
    if touched & attr::STAGE_ENTERED != 0 {
        groups |= checks::TIME_IN_STAGE;
    }
    if touched & (attr::CLOSE_PUSHES | attr::CLOSE_SLIP) != 0 {
        groups |= checks::CLOSE_DATE;
    }
    groups
}

pub struct Engine {
    pub rules: RuleSet,
    field_groups: HashMap<Name, Groups>,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Self {
        let field_groups = field_groups(&rules);
        Engine {
            rules,
            field_groups,
        }
    }

    /// The change's event time: what `apply` relies on and the Python engine
    /// would raise on. A change failing here is skipped by the caller.
    pub fn occurred_ms(change: &Change) -> Result<i64, String> {
        if let Some(micros) = change.occurred_us {
            return Ok(crate::clock::micros_to_ms(micros));
        }
        parse_occurred_ms(&change.occurred_at).ok_or_else(|| {
            format!(
                "occurred_at {:?} is not an aware ISO datetime",
                change.occurred_at
            )
        })
    }

    pub fn apply(
        &self,
        state: &mut OpportunityState,
        mut change: Change,
        occurred: i64,
        outcome: &mut Outcome,
    ) {
        let stamp = order_stamp(occurred, change.sequence, &change.event_id);
        let values = values_of(&mut change);
        let change = &change;

        // Which check groups read something this change altered (None: all).
        let mut dirty: Option<Groups> = Some(0);
        for (name, value) in &values {
            if last_writer_wins(state, *name, value, stamp) {
                if checks::STRUCTURAL_FIELDS.contains(name) {
                    dirty = None;
                } else if let (Some(d), Some(g)) = (dirty.as_mut(), self.field_groups.get(name)) {
                    *d |= g;
                }
            }
        }
        let mut touched = self.merge_bookkeeping(state, change, occurred, stamp, &values);
        let summary_before = (
            state.stage_entered_ms,
            state.close_pushes,
            state.close_slip_days,
        );

        let mut tracked = Fields::default();
        for name in TRACKED {
            if let Some(value) = values.get(&name) {
                tracked.insert(name, value.clone());
            }
        }
        let mut new_transitions: Vec<Transition> = Vec::new();
        if !tracked.is_empty() {
            let rules = &self.rules;
            let known = timeline::published_count(state, rules);
            let observation_id = timeline::observation_id(&change.event_id, &tracked);
            if let Some(position) = timeline::insert(state, stamp, observation_id, tracked) {
                let at_end = position == state.timeline.len() - 1;
                let extended = if at_end {
                    timeline::extend(state, rules)
                } else {
                    None
                };
                if let Some(summary) = extended {
                    // Appended in order: earlier transitions cannot have changed.
                    summarize(state, &summary);
                    let walk = state
                        .memo
                        .walk
                        .as_ref()
                        .expect("extend stepped a cached walk");
                    new_transitions = walk.transitions[known..].to_vec();
                    for transition in &new_transitions {
                        outcome
                            .history
                            .push(history_record(state, transition, false));
                    }
                } else {
                    let before = state
                        .memo
                        .walk
                        .as_ref()
                        .map(|w| w.transitions.clone())
                        .unwrap_or_default();
                    new_transitions = self.republish(state, before, outcome);
                }
                timeline::compact(state, rules);
            }
        }

        if state.stage_entered_ms != summary_before.0 {
            touched |= attr::STAGE_ENTERED;
        }
        if state.close_pushes != summary_before.1 {
            touched |= attr::CLOSE_PUSHES;
        }
        if state.close_slip_days != summary_before.2 {
            touched |= attr::CLOSE_SLIP;
        }
        if let Some(d) = dirty.as_mut() {
            if touched & attr::STRUCTURAL != 0 {
                dirty = None;
            } else {
                *d |= attribute_groups(touched);
            }
        }
        let now = state.high_water_ms;
        self.reconcile(state, now, Some(&change.event_id), outcome, dirty);
        self.notices(state, &new_transitions, &change.event_id, outcome);
    }

    /// Re-evaluates time-driven rules at `now_ms`, never before the latest
    /// event seen (a lagging clock cannot reopen what an event closed).
    pub fn sweep(&self, state: &mut OpportunityState, now_ms: i64, outcome: &mut Outcome) {
        let now = now_ms.max(state.high_water_ms);
        self.reconcile(state, now, None, outcome, Some(0));
    }

    fn republish(
        &self,
        state: &mut OpportunityState,
        before: Vec<Transition>,
        outcome: &mut Outcome,
    ) -> Vec<Transition> {
        let (after, summary) = timeline::derive(state, &self.rules);
        summarize(state, &summary);
        let mut previous: crate::state::Keyed<Transition> = Default::default();
        for t in before {
            previous.insert(t.event_id.clone(), t);
        }
        let mut current_ids = std::collections::HashSet::new();
        let mut new = Vec::new();
        for transition in after {
            current_ids.insert(transition.event_id.clone());
            let old = previous.get(&transition.event_id);
            if !old.is_some_and(|o| o.same_as(&transition)) {
                outcome
                    .history
                    .push(history_record(state, &transition, false));
                if old.is_none() {
                    new.push(transition);
                }
            }
        }
        for (id, old) in &previous {
            if !current_ids.contains(id) {
                outcome.history.push(history_record(state, old, true));
            }
        }
        new
    }

    /// Alerts are the edges of the condition set. Only the `dirty` groups
    /// are evaluated (None: all), plus the time-driven ones once the last
    /// evaluation's due time has passed, exactly as the Python engine does.
    fn reconcile(
        &self,
        state: &mut OpportunityState,
        now_ms: i64,
        event_id: Option<&str>,
        outcome: &mut Outcome,
        dirty: Option<Groups>,
    ) {
        let rules = &self.rules;
        let evaluated = state.memo.evaluated;
        let mut groups = dirty;
        match evaluated {
            None => groups = None,
            Some((at, _)) if now_ms < at => groups = None,
            Some((_, Some(due))) if now_ms >= due => {
                if let Some(g) = groups.as_mut() {
                    *g |= checks::TIME_GROUPS;
                }
            }
            _ => {}
        }
        if groups == Some(0) {
            return;
        }
        let found = evaluate(state, rules, now_ms, groups);
        let due = match (evaluated, groups) {
            (Some((_, due)), Some(g)) if g & checks::TIME_GROUPS == 0 => due,
            _ => next_due(state, rules, now_ms),
        };
        state.memo.evaluated = Some((now_ms, due));
        if found.is_empty() && state.open_alerts.is_empty() {
            return;
        }
        let pipeline = rules.pipeline_for(get(&state.fields, names::PIPELINE));
        let covered = |rule: &str| match groups {
            None => true,
            Some(g) => group_of(rule).is_some_and(|r| r & g != 0),
        };
        let resolved: Vec<String> = state
            .open_alerts
            .keys()
            .filter(|r| !found.iter().any(|f| f.rule_id == r.as_str()) && covered(r))
            .cloned()
            .collect();
        for rule_id in resolved {
            let opened = state.open_alerts.shift_remove(&rule_id).unwrap_or_default();
            let reason = resolution_reason(state, pipeline);
            outcome.alerts.push(build_resolution(
                state, &rule_id, opened, rules, now_ms, &reason, event_id,
            ));
        }
        for finding in &found {
            if state.open_alerts.contains_key(finding.rule_id) {
                continue;
            }
            let alert = build_alert(state, finding, rules, pipeline, now_ms, event_id, None);
            if finding.rule_id == "stale_close_out" {
                outcome
                    .commands
                    .push(build_close_out(state, &alert, pipeline, rules));
            }
            outcome.alerts.push(alert.to_json());
            state.open_alerts.insert(finding.rule_id.to_owned(), now_ms);
        }
    }

    /// Skips and regressions describe a move, not a lasting condition: they
    /// never open and never resolve.
    fn notices(
        &self,
        state: &OpportunityState,
        transitions: &[Transition],
        event_id: &str,
        outcome: &mut Outcome,
    ) {
        let rules = &self.rules;
        for transition in transitions {
            if transition.kind != "stage_changed" {
                continue;
            }
            let pipeline = rules.pipeline_for(get(&state.fields, names::PIPELINE));
            let old = pipeline.position_of(transition.previous_stage.as_deref());
            let new = pipeline.position_of(transition.new_stage.as_deref());
            let (Some(old), Some(new)) = (old, new) else {
                continue;
            };
            let Some(finding) = move_finding(pipeline, old, new) else {
                continue;
            };
            if !pipeline.enabled(finding.rule_id) {
                continue;
            }
            let record = timeline::record_id(&state.opportunity_id, &transition.event_id);
            let compact: String = record.replace('-', "").chars().take(20).collect();
            let identifier = format!("al_{compact}_{}", finding.rule_id);
            outcome.alerts.push(
                build_alert(
                    state,
                    &finding,
                    rules,
                    pipeline,
                    transition.at_ms,
                    Some(event_id),
                    Some(identifier),
                )
                .to_json(),
            );
        }
    }

    /// Order-independent aggregates: maxima, minima and sets.
    fn merge_bookkeeping(
        &self,
        state: &mut OpportunityState,
        change: &Change,
        occurred: i64,
        stamp: i64,
        values: &Fields,
    ) -> u16 {
        let mut touched = 0;
        let mut activity = (change.op == "activity").then_some(occurred);
        if let Some(Value::String(day)) = values.get(&names::LAST_ACTIVITY_DATE) {
            if let Some(day_ms) = self.rules.days.day_start_ms(day) {
                activity = Some(activity.map_or(day_ms, |a| a.max(day_ms)));
            }
        }
        if let Some(a) = activity {
            if state.last_activity_ms.is_none_or(|last| a > last) {
                state.last_activity_ms = Some(a);
                touched |= attr::LAST_ACTIVITY;
            }
        }
        for contact in &change.contact_ids {
            if !state.contacts.contains(contact) {
                state.contacts.push(contact.clone());
                state.contacts.sort();
                state.contacts.truncate(CONTACTS_CAP);
                touched |= attr::CONTACTS;
            }
        }
        if change.full && stamp > state.full_stamp {
            state.full_stamp = stamp;
            touched |= attr::FULL;
        }
        if change.op == "gap" && stamp > state.gap_stamp {
            state.gap_stamp = stamp;
            touched |= attr::GAP;
        }
        if change.op == "merge" {
            if let Some(into) = change.merged_into.as_deref().filter(|s| !s.is_empty()) {
                if state.merged_into.as_deref() != Some(into) {
                    state.merged_into = Some(into.to_owned());
                    touched |= attr::MERGED;
                }
            }
        }
        if state.created_ms.is_none_or(|c| occurred < c) {
            state.created_ms = Some(occurred);
            touched |= attr::CREATED;
        }
        if occurred > state.high_water_ms {
            state.high_water_ms = occurred;
            touched |= attr::HIGH_WATER;
        }
        touched
    }
}

fn summarize(state: &mut OpportunityState, summary: &timeline::Summary) {
    state.stage_entered_ms = summary.stage_entered_ms;
    state.close_pushes = summary.close_pushes;
    state.close_slip_days = summary.close_slip_days;
}

fn values_of(change: &mut Change) -> Fields {
    match change.op.as_str() {
        "upsert" | "restore" => {
            let mut values = std::mem::take(&mut change.fields);
            for name in &change.nulled_fields {
                values.insert(*name, Value::Null);
            }
            if change.op == "restore" || change.full {
                // A whole record newer than a delete says the record exists.
                values.insert(names::DELETED, Value::Bool(false));
            }
            values
        }
        "delete" | "merge" => {
            let mut values = Fields::default();
            values.insert(names::DELETED, Value::Bool(true));
            values
        }
        _ => Fields::default(),
    }
}

/// Per field, the newest stamp wins; equal stamps break ties on `repr` so
/// that no two delivery orders can end differently.
fn last_writer_wins(state: &mut OpportunityState, name: Name, value: &Value, stamp: i64) -> bool {
    let current = state.fields.get(&name);
    if let Some(&held) = state.stamps.get(&name) {
        if stamp < held {
            return false;
        }
        if stamp == held {
            let current_value = current.unwrap_or(&Value::Null);
            if pyvalue::eq(value, current_value)
                || pyvalue::repr(value) <= pyvalue::repr(current_value)
            {
                return false;
            }
        }
    }
    state.stamps.insert(name, stamp);
    if value.is_null() {
        return state.fields.shift_remove(&name).is_some();
    }
    let changed = !current.is_some_and(|c| pyvalue::eq(value, c));
    state.fields.insert(name.to_owned(), value.clone());
    changed
}

fn resolution_reason(state: &OpportunityState, pipeline: &Pipeline) -> String {
    if let Some(into) = &state.merged_into {
        return format!("merged into {into}");
    }
    if state
        .fields
        .get(&names::DELETED)
        .is_some_and(pyvalue::truthy)
    {
        return "deleted in the CRM".into();
    }
    if let Some(position) = pipeline.stage_position(text(&state.fields, names::STAGE)) {
        if pipeline.stages[position].closed {
            return format!("closed as {}", pipeline.stages[position].name);
        }
    }
    "condition cleared".into()
}

fn move_finding(pipeline: &Pipeline, old: usize, new: usize) -> Option<Finding> {
    let stages = &pipeline.stages;
    let (from, to) = (&stages[old].name, &stages[new].name);
    let make = |rule_id, title: String, message: String, fix: String, details: Value| Finding {
        rule_id,
        title,
        message,
        fix,
        details: match details {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
    };
    if stages[old].closed || stages[new].closed {
        if stages[old].closed && !stages[new].closed {
            return Some(make(
                "stage_regressed",
                format!("Reopened: {from} -> {to}"),
                format!("A closed deal was reopened into {to}."),
                "Make sure the reopening is intended and the close date and amount are current."
                    .into(),
                json!({"from": from, "to": to}),
            ));
        }
        return None;
    }
    if new < old {
        return Some(make(
            "stage_regressed",
            format!("Moved back: {from} -> {to}"),
            format!("The deal moved back from {from} to {to}."),
            "Record why in the next step, and check the close date and forecast category.".into(),
            json!({"from": from, "to": to}),
        ));
    }
    let skipped: Vec<&str> = stages[old + 1..new]
        .iter()
        .filter(|s| !s.closed)
        .map(|s| s.name.as_str())
        .collect();
    if skipped.is_empty() {
        return None;
    }
    let list = skipped.join(", ");
    Some(make(
        "stage_skipped",
        format!("Skipped {list}"),
        format!("The deal jumped from {from} to {to}, skipping {list}."),
        format!("Confirm the exit criteria of {list} were met and fill in their fields."),
        json!({"from": from, "to": to, "skipped": skipped}),
    ))
}
