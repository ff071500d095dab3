//! The stored form of a state (schemas/state.py `state_to_json` /
//! `state_from_json`): what the stream writes to its table and changelog, so
//! a state can move between the Python and the native engine either way.
//!
//! The memo is never stored: a loaded state derives in full, as in Python.

use crate::names::Name;
use crate::state::{Fields, Observation, OpportunityState};
use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

fn base_of(state: &OpportunityState) -> i64 {
    state.timeline.first().map_or(0, |o| o.stamp)
}

// The stored form is written straight from the state (serde over borrowed
// data): building a `Value` tree first cloned every field value, and the
// stream writes each touched state once per unit of work.

struct FieldsOut<'a>(&'a Fields);

impl Serialize for FieldsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name.as_str(), value)?;
        }
        map.end()
    }
}

/// One observation: `[delta, values]`, `[delta, [before, after], values]`
/// (the opportunity id cut out of its event id) or `[delta, id, values]`.
struct ObservationOut<'a> {
    delta: i64,
    observation: &'a Observation,
    opportunity_id: &'a str,
}

impl Serialize for ObservationOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event_id = self.observation.event_id.as_str();
        let values = FieldsOut(&self.observation.values);
        if event_id.is_empty() {
            return (self.delta, values).serialize(serializer);
        }
        let opportunity_id = self.opportunity_id;
        match (!opportunity_id.is_empty())
            .then(|| event_id.split_once(opportunity_id))
            .flatten()
        {
            Some((before, after)) => (self.delta, [before, after], values).serialize(serializer),
            None => (self.delta, event_id, values).serialize(serializer),
        }
    }
}

struct ObservationsOut<'a>(&'a OpportunityState);

impl Serialize for ObservationsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.0;
        let mut seq = serializer.serialize_seq(Some(state.timeline.len()))?;
        let mut previous = base_of(state);
        for observation in &state.timeline {
            seq.serialize_element(&ObservationOut {
                delta: observation.stamp - previous,
                observation,
                opportunity_id: &state.opportunity_id,
            })?;
            previous = observation.stamp;
        }
        seq.end()
    }
}

struct TimelineOut<'a>(&'a OpportunityState);

impl Serialize for TimelineOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("base", &base_of(self.0))?;
        map.serialize_entry("obs", &ObservationsOut(self.0))?;
        map.end()
    }
}

/// Field stamps grouped by stamp, relative to the timeline's first stamp.
struct StampsOut<'a>(&'a OpportunityState);

impl Serialize for StampsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let base = base_of(self.0);
        let mut grouped: IndexMap<i64, Vec<&str>, FxBuildHasher> = IndexMap::default();
        for (name, stamp) in &self.0.stamps {
            grouped.entry(stamp - base).or_default().push(name.as_str());
        }
        let mut map = serializer.serialize_map(Some(grouped.len()))?;
        for (stamp, names) in &grouped {
            map.serialize_entry(&stamp.to_string(), names)?;
        }
        map.end()
    }
}

struct StateOut<'a>(&'a OpportunityState);

impl Serialize for StateOut<'_> {
    /// In the model's field order, every attribute that differs from its
    /// default, as `state_to_json` writes them (the bytes, not only the
    /// values, are the Python engine's).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("opportunity_id", &state.opportunity_id)?;
        if !state.fields.is_empty() {
            map.serialize_entry("fields", &FieldsOut(&state.fields))?;
        }
        if !state.stamps.is_empty() {
            map.serialize_entry("stamps", &StampsOut(state))?;
        }
        if !state.timeline.is_empty() {
            map.serialize_entry("timeline", &TimelineOut(state))?;
        }
        if !state.base.is_empty() {
            map.serialize_entry("base", &FieldsOut(&state.base))?;
        }
        let ints = [
            ("base_stamp", Some(state.base_stamp).filter(|v| *v != 0)),
            ("stage_entered_ms", state.stage_entered_ms),
            ("close_pushes", Some(state.close_pushes).filter(|v| *v != 0)),
            (
                "close_slip_days",
                Some(state.close_slip_days).filter(|v| *v != 0),
            ),
            ("last_activity_ms", state.last_activity_ms),
        ];
        for (key, value) in ints {
            if let Some(value) = value {
                map.serialize_entry(key, &value)?;
            }
        }
        if !state.contacts.is_empty() {
            map.serialize_entry("contacts", &state.contacts)?;
        }
        let ints = [
            ("created_ms", state.created_ms),
            (
                "high_water_ms",
                Some(state.high_water_ms).filter(|v| *v != 0),
            ),
            ("gap_stamp", Some(state.gap_stamp).filter(|v| *v != 0)),
            ("full_stamp", Some(state.full_stamp).filter(|v| *v != 0)),
        ];
        for (key, value) in ints {
            if let Some(value) = value {
                map.serialize_entry(key, &value)?;
            }
        }
        if let Some(into) = &state.merged_into {
            map.serialize_entry("merged_into", into)?;
        }
        if let Some(due) = state.next_due_ms {
            map.serialize_entry("next_due_ms", &due)?;
        }
        if !state.open_alerts.is_empty() {
            map.serialize_entry("open_alerts", &state.open_alerts)?;
        }
        map.end()
    }
}

/// What `state_to_json` writes.
pub fn dump(state: &OpportunityState) -> Vec<u8> {
    serde_json::to_vec(&StateOut(state)).expect("a state serializes")
}

/// What the stream's regroupings read of a state (`shell::light`):
/// `{"fields", "open_alerts", "merged_into", "high_water_ms"}`.
/// With `only`, just those fields (in the state's order) and no
/// `high_water_ms`: what the regroupings read, so that a change to anything
/// else leaves the light form equal and costs the shell no membership.
pub fn light(state: &OpportunityState, only: Option<&[Name]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::new(&mut out);
    let mut map = serializer.serialize_map(None).expect("writes to a Vec");
    let written = match only {
        None => map.serialize_entry("fields", &FieldsOut(&state.fields)),
        Some(names) => {
            let kept: Fields = state
                .fields
                .iter()
                .filter(|(name, _)| names.contains(name))
                .map(|(name, value)| (*name, value.clone()))
                .collect();
            map.serialize_entry("fields", &FieldsOut(&kept))
        }
    };
    written
        .and_then(|()| map.serialize_entry("open_alerts", &state.open_alerts))
        .and_then(|()| map.serialize_entry("merged_into", &state.merged_into))
        .and_then(|()| match only {
            None => map.serialize_entry("high_water_ms", &state.high_water_ms),
            Some(_) => Ok(()),
        })
        .and_then(|()| SerializeMap::end(map))
        .expect("a state serializes");
    out
}

fn fields_of(value: Option<&Value>) -> Result<Fields, String> {
    match value {
        None | Some(Value::Null) => Ok(Fields::default()),
        Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (Name::of(k), v.clone())).collect()),
        Some(_) => Err("a field map is not an object".into()),
    }
}

fn int(value: Option<&Value>) -> Result<Option<i64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{v} is not an integer")),
    }
}

fn observation(
    stamp: i64,
    id: &Value,
    values: &Value,
    opportunity_id: &str,
) -> Result<Observation, String> {
    let event_id = match id {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            parts.join(opportunity_id)
        }
        _ => return Err("an observation's event id is neither text nor [before, after]".into()),
    };
    Ok(Observation {
        stamp,
        event_id,
        values: fields_of(Some(values))?,
    })
}

/// The stored form (packed, or the list form written before) back into a state.
pub fn load(data: &Value) -> Result<OpportunityState, String> {
    let object = data.as_object().ok_or("a state is a JSON object")?;
    let opportunity_id = object
        .get("opportunity_id")
        .and_then(Value::as_str)
        .ok_or("a state needs its opportunity_id")?;
    let mut state = OpportunityState::new(opportunity_id);
    state.fields = fields_of(object.get("fields"))?;
    state.base = fields_of(object.get("base"))?;
    let mut base = 0;
    match object.get("timeline") {
        Some(Value::Object(packed)) => {
            base = int(packed.get("base"))?.unwrap_or(0);
            let mut stamp = base;
            for item in packed
                .get("obs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let parts = item.as_array().ok_or("a packed observation is a list")?;
                stamp += int(parts.first())?.unwrap_or(0);
                state.timeline.push(match parts.len() {
                    2 => observation(stamp, &Value::from(""), &parts[1], opportunity_id)?,
                    3 => observation(stamp, &parts[1], &parts[2], opportunity_id)?,
                    _ => return Err("a packed observation has 2 or 3 items".into()),
                });
            }
        }
        Some(Value::Array(list)) => {
            for item in list {
                let parts = item
                    .as_array()
                    .filter(|p| p.len() == 3)
                    .ok_or("an observation is [stamp, id, values]")?;
                let stamp = int(parts.first())?.unwrap_or(0);
                state
                    .timeline
                    .push(observation(stamp, &parts[1], &parts[2], opportunity_id)?);
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err("timeline is neither packed nor a list".into()),
    }
    if let Some(Value::Object(stamps)) = object.get("stamps") {
        let grouped = stamps.values().any(Value::is_array);
        for (key, value) in stamps {
            if grouped {
                let stamp: i64 = key.parse().map_err(|_| format!("stamp {key:?}"))?;
                for name in value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    state.stamps.insert(Name::of(name), stamp + base);
                }
            } else {
                state
                    .stamps
                    .insert(Name::of(key), int(Some(value))?.unwrap_or(0));
            }
        }
    }
    state.base_stamp = int(object.get("base_stamp"))?.unwrap_or(0);
    state.stage_entered_ms = int(object.get("stage_entered_ms"))?;
    state.close_pushes = int(object.get("close_pushes"))?.unwrap_or(0);
    state.close_slip_days = int(object.get("close_slip_days"))?.unwrap_or(0);
    state.last_activity_ms = int(object.get("last_activity_ms"))?;
    state.contacts = object
        .get("contacts")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    state.created_ms = int(object.get("created_ms"))?;
    state.high_water_ms = int(object.get("high_water_ms"))?.unwrap_or(0);
    state.gap_stamp = int(object.get("gap_stamp"))?.unwrap_or(0);
    state.full_stamp = int(object.get("full_stamp"))?.unwrap_or(0);
    state.merged_into = object
        .get("merged_into")
        .and_then(Value::as_str)
        .map(str::to_owned);
    state.next_due_ms = int(object.get("next_due_ms"))?;
    if let Some(Value::Object(alerts)) = object.get("open_alerts") {
        for (rule, opened) in alerts {
            state
                .open_alerts
                .insert(rule.clone(), int(Some(opened))?.unwrap_or(0));
        }
    }
    Ok(state)
}
