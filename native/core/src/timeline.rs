//! The observation timeline and the stage history derived from it
//! (processor/core/timeline.py): history is a function of the timeline in
//! event-time order, so delivery order and redelivery cannot change it.

use crate::clock::{days_between, stamp_ms};
use crate::names::{self, Name};
use crate::pyvalue;
use crate::rules::RuleSet;
use crate::state::{get, text, Fields, Observation, OpportunityState};
use serde_json::Value;
use uuid::Uuid;

pub const TIMELINE_CAP: usize = 32;
const NAMESPACE: Uuid = Uuid::from_u128(0x5b7d7f0e_4c1a_4d7e_9f57_3b1f0b2f6a10);

use crate::names::{CATEGORY, ENTERED, FIRST_CLOSE, PUSHES, STARTED};
const CONTEXT_KEYS: [Name; 5] = [ENTERED, PUSHES, FIRST_CLOSE, STARTED, CATEGORY];
const NAMING_FIELDS: [Name; 4] = [
    names::STAGE,
    names::DELETED,
    names::FORECAST_CATEGORY,
    names::PIPELINE,
];

#[derive(Clone)]
pub struct Transition {
    pub kind: &'static str,
    pub event_id: String,
    pub stamp: i64,
    pub at_ms: i64,
    pub previous_stage: Option<String>,
    pub new_stage: Option<String>,
    pub previous_entered_ms: Option<i64>,
    pub amount: Option<Value>,
    pub currency: Option<Value>,
    pub close_date: Option<Value>,
    pub forecast_category: Option<String>,
    pub owner_id: Option<Value>,
    pub pipeline: String,
    pub is_closed: bool,
    pub is_won: bool,
    pub pushes: i64,
}

fn same(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => pyvalue::eq(x, y),
        _ => false,
    }
}

impl Transition {
    /// The dataclass equality Python uses to decide what to publish again.
    pub fn same_as(&self, other: &Transition) -> bool {
        self.kind == other.kind
            && self.event_id == other.event_id
            && self.stamp == other.stamp
            && self.at_ms == other.at_ms
            && self.previous_stage == other.previous_stage
            && self.new_stage == other.new_stage
            && self.previous_entered_ms == other.previous_entered_ms
            && same(&self.amount, &other.amount)
            && same(&self.currency, &other.currency)
            && same(&self.close_date, &other.close_date)
            && self.forecast_category == other.forecast_category
            && same(&self.owner_id, &other.owner_id)
            && self.pipeline == other.pipeline
            && self.is_closed == other.is_closed
            && self.is_won == other.is_won
            && self.pushes == other.pushes
    }
}

pub struct Summary {
    pub stage_entered_ms: Option<i64>,
    pub close_pushes: i64,
    pub close_slip_days: i64,
}

pub fn record_id(opportunity_id: &str, event_id: &str) -> String {
    let name = format!("{opportunity_id}\u{1f}{event_id}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// The standard forecast category of these values: a closed stage decides
/// it, else the rep's explicit category, else the stage's mapping.
pub fn forecast_category(rules: &RuleSet, values: &Fields) -> Option<String> {
    let pipeline = rules.pipeline_for(get(values, names::PIPELINE));
    let stage = pipeline
        .stage_position(text(values, names::STAGE))
        .map(|p| &pipeline.stages[p]);
    let category = match stage {
        Some(s) if s.closed => None,
        _ => rules
            .standard_category(get(values, names::FORECAST_CATEGORY))
            .map(str::to_owned),
    };
    category.or_else(|| stage.map(|s| s.forecast_category.clone()))
}

/// Only observations that can start a transition keep their event id.
pub fn observation_id(event_id: &str, values: &Fields) -> String {
    if NAMING_FIELDS.iter().any(|n| values.contains_key(n)) {
        event_id.to_owned()
    } else {
        String::new()
    }
}

/// Puts an observation in event-time order; None for a duplicate or one
/// older than what has been folded away.
pub fn insert(
    state: &mut OpportunityState,
    stamp: i64,
    event_id: String,
    values: Fields,
) -> Option<usize> {
    if state.base_stamp != 0 && stamp <= state.base_stamp {
        return None;
    }
    let timeline = &mut state.timeline;
    let key = (stamp, event_id.as_str());
    if timeline
        .last()
        .is_none_or(|last| (last.stamp, last.event_id.as_str()) < key)
    {
        timeline.push(Observation {
            stamp,
            event_id,
            values,
        });
        return Some(timeline.len() - 1);
    }
    let position = timeline.partition_point(|o| (o.stamp, o.event_id.as_str()) < key);
    if let Some(existing) = timeline.get(position) {
        if existing.stamp == stamp
            && existing.event_id == event_id
            && (!event_id.is_empty() || pyvalue::fields_eq(&existing.values, &values))
        {
            return None;
        }
    }
    timeline.insert(
        position,
        Observation {
            stamp,
            event_id,
            values,
        },
    );
    Some(position)
}

/// The running context of a walk over observations.
#[derive(Clone)]
pub struct Walk {
    values: Fields,
    entered: Option<i64>,
    pushes: i64,
    first_close: Option<Value>,
    started: bool,
    stage: Option<String>,
    deleted: bool,
    category: Option<String>,
    stamp: i64,
    pub transitions: Vec<Transition>,
}

impl Walk {
    pub fn from_base(state: &OpportunityState, rules: &RuleSet) -> Walk {
        let base = &state.base;
        let values: Fields = base
            .iter()
            .filter(|(k, _)| !CONTEXT_KEYS.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let mut walk = Walk {
            entered: base.get(&ENTERED).and_then(Value::as_i64),
            pushes: base.get(&PUSHES).and_then(Value::as_i64).unwrap_or(0),
            first_close: get(base, FIRST_CLOSE).cloned(),
            started: base.get(&STARTED).is_some_and(pyvalue::truthy),
            values,
            stage: None,
            deleted: false,
            category: None,
            stamp: 0,
            transitions: Vec::new(),
        };
        walk.stage = walk.canonical_stage(rules);
        walk.deleted = walk
            .values
            .get(&names::DELETED)
            .is_some_and(pyvalue::truthy);
        // States folded before categories were tracked have no _category.
        walk.category = match base.get(&CATEGORY) {
            Some(value) => value.as_str().map(str::to_owned),
            None if walk.started => forecast_category(rules, &walk.values),
            None => None,
        };
        walk
    }

    pub fn to_base(&self) -> Fields {
        let mut base = self.values.clone();
        let opt_i = |v: Option<i64>| v.map_or(Value::Null, Value::from);
        base.insert(ENTERED, opt_i(self.entered));
        base.insert(PUSHES, Value::from(self.pushes));
        base.insert(FIRST_CLOSE, self.first_close.clone().unwrap_or(Value::Null));
        base.insert(STARTED, Value::Bool(self.started));
        base.insert(
            CATEGORY,
            self.category.clone().map_or(Value::Null, Value::String),
        );
        base
    }

    fn canonical_stage(&self, rules: &RuleSet) -> Option<String> {
        let pipeline = rules.pipeline_for(get(&self.values, names::PIPELINE));
        pipeline.canonical_stage(text(&self.values, names::STAGE))
    }

    pub fn step(&mut self, observation: &Observation, rules: &RuleSet) {
        self.stamp = observation.stamp;
        let changed = &observation.values;
        if let Some(new_close) = get(changed, names::CLOSE_DATE) {
            if let (Some(Value::String(old)), Value::String(new)) =
                (get(&self.values, names::CLOSE_DATE), new_close)
            {
                if new > old {
                    self.pushes += 1;
                }
            }
            if self.first_close.is_none() {
                self.first_close = Some(new_close.clone());
            }
        }
        for (k, v) in changed {
            self.values.insert(*k, v.clone());
        }
        let stage = self.canonical_stage(rules);
        let deleted = self
            .values
            .get(&names::DELETED)
            .is_some_and(pyvalue::truthy);
        let at = stamp_ms(observation.stamp);
        let event_id = &observation.event_id;
        if !self.started {
            if stage.is_some() && !deleted {
                self.emit(rules, "created", event_id, at, None, stage.clone(), None);
                self.entered = Some(at);
                self.started = true;
            }
        } else if deleted != self.deleted {
            if deleted {
                self.emit(
                    rules,
                    "deleted",
                    event_id,
                    at,
                    self.stage.clone(),
                    None,
                    self.entered,
                );
            } else {
                self.emit(rules, "restored", event_id, at, None, stage.clone(), None);
                self.entered = Some(at);
            }
        } else if !deleted && stage != self.stage {
            self.emit(
                rules,
                "stage_changed",
                event_id,
                at,
                self.stage.clone(),
                stage.clone(),
                self.entered,
            );
            self.entered = Some(at);
        } else if !deleted && forecast_category(rules, &self.values) != self.category {
            // Same stage, another category: the rep's call moved, and
            // forecasting needs when.
            self.emit(
                rules,
                "category_changed",
                event_id,
                at,
                stage.clone(),
                stage.clone(),
                self.entered,
            );
        }
        self.stage = stage;
        self.deleted = deleted;
        if self.started && !deleted {
            self.category = forecast_category(rules, &self.values);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        rules: &RuleSet,
        kind: &'static str,
        event_id: &str,
        at: i64,
        previous: Option<String>,
        new: Option<String>,
        previous_entered: Option<i64>,
    ) {
        let values = &self.values;
        let pipeline = rules.pipeline_for(get(values, names::PIPELINE));
        let stage = pipeline
            .stage_position(text(values, names::STAGE))
            .map(|p| &pipeline.stages[p]);
        let transition = Transition {
            kind,
            event_id: event_id.to_owned(),
            stamp: self.stamp,
            at_ms: at,
            previous_stage: previous,
            new_stage: new,
            previous_entered_ms: previous_entered,
            amount: get(values, names::AMOUNT).cloned(),
            currency: get(values, names::CURRENCY).cloned(),
            close_date: get(values, names::CLOSE_DATE).cloned(),
            forecast_category: forecast_category(rules, values),
            owner_id: get(values, names::OWNER_ID).cloned(),
            pipeline: pipeline.id.clone(),
            is_closed: stage.is_some_and(|s| s.closed),
            is_won: stage.is_some_and(|s| s.won),
            pushes: self.pushes,
        };
        self.transitions.push(transition);
    }

    pub fn summary(&self) -> Summary {
        let current = get(&self.values, names::CLOSE_DATE);
        let mut slip = 0;
        if let (Some(first), Some(current)) = (&self.first_close, current) {
            if pyvalue::truthy(first) && pyvalue::truthy(current) {
                if let (Some(a), Some(b)) = (first.as_str(), current.as_str()) {
                    slip = days_between(a, b).unwrap_or(0).max(0);
                }
            }
        }
        Summary {
            stage_entered_ms: self.entered,
            close_pushes: self.pushes,
            close_slip_days: slip,
        }
    }
}

pub fn derive(state: &mut OpportunityState, rules: &RuleSet) -> (Vec<Transition>, Summary) {
    let mut walk = Walk::from_base(state, rules);
    for observation in &state.timeline {
        walk.step(observation, rules);
    }
    let out = (walk.transitions.clone(), walk.summary());
    state.memo.walk = Some(walk);
    out
}

/// Steps the cached walk over the observation just appended; None when no
/// walk is cached (the caller derives).
pub fn extend(state: &mut OpportunityState, rules: &RuleSet) -> Option<Summary> {
    let walk = state.memo.walk.as_mut()?;
    let last = state.timeline.last()?;
    walk.step(last, rules);
    Some(walk.summary())
}

/// How many transitions were published last (derived once when not cached).
pub fn published_count(state: &mut OpportunityState, rules: &RuleSet) -> usize {
    if state.memo.walk.is_none() {
        derive(state, rules);
    }
    state.memo.walk.as_ref().map_or(0, |w| w.transitions.len())
}

pub fn published(state: &mut OpportunityState, rules: &RuleSet) -> Vec<Transition> {
    if state.memo.walk.is_none() {
        derive(state, rules);
    }
    state
        .memo
        .walk
        .as_ref()
        .map(|w| w.transitions.clone())
        .unwrap_or_default()
}

/// Folds the oldest observations into the base so state stays small.
pub fn compact(state: &mut OpportunityState, rules: &RuleSet) {
    let excess = state.timeline.len().saturating_sub(TIMELINE_CAP);
    if excess == 0 {
        return;
    }
    let mut walk = Walk::from_base(state, rules);
    for observation in &state.timeline[..excess] {
        walk.step(observation, rules);
    }
    state.base = walk.to_base();
    let base_stamp = state.timeline[excess - 1].stamp;
    state.base_stamp = base_stamp;
    state.timeline.drain(..excess);
    // The folded observations' transitions are no longer derivable.
    if let Some(cached) = state.memo.walk.as_mut() {
        cached.transitions.retain(|t| t.stamp > base_stamp);
    }
}
