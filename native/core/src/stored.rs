//! The stored form of a state (schemas/state.py `state_to_json` /
//! `state_from_json`): what the stream writes to its table and changelog, so
//! a state can move between the Python and the native engine either way.
//!
//! The memo is never stored: a loaded state derives in full, as in Python.

use crate::names::Name;
use crate::state::{Fields, Observation, OpportunityState};
use serde_json::{json, Map, Value};

fn base_of(state: &OpportunityState) -> i64 {
    state.timeline.first().map_or(0, |o| o.stamp)
}

fn fields_json(fields: &Fields) -> Value {
    let mut map = Map::with_capacity(fields.len());
    for (name, value) in fields {
        map.insert(name.as_str().to_owned(), value.clone());
    }
    Value::Object(map)
}

fn pack_timeline(state: &OpportunityState) -> Value {
    let base = base_of(state);
    let mut previous = base;
    let opportunity_id = state.opportunity_id.as_str();
    let mut packed = Vec::with_capacity(state.timeline.len());
    for observation in &state.timeline {
        let delta = observation.stamp - previous;
        previous = observation.stamp;
        let values = fields_json(&observation.values);
        let event_id = observation.event_id.as_str();
        packed.push(if event_id.is_empty() {
            json!([delta, values])
        } else if let Some((before, after)) = (!opportunity_id.is_empty())
            .then(|| event_id.split_once(opportunity_id))
            .flatten()
        {
            json!([delta, [before, after], values])
        } else {
            json!([delta, event_id, values])
        });
    }
    json!({"base": base, "obs": packed})
}

/// Field stamps grouped by stamp, relative to the timeline's first stamp.
fn pack_stamps(state: &OpportunityState) -> Value {
    let base = base_of(state);
    let mut grouped = Map::new();
    for (name, stamp) in &state.stamps {
        let key = (stamp - base).to_string();
        match grouped.get_mut(&key) {
            Some(Value::Array(names)) => names.push(Value::from(name.as_str())),
            _ => {
                grouped.insert(key, json!([name.as_str()]));
            }
        }
    }
    Value::Object(grouped)
}

/// What `state_to_json` writes: every attribute that differs from its default.
pub fn dump(state: &OpportunityState) -> Value {
    let mut out = Map::new();
    out.insert(
        "opportunity_id".into(),
        Value::from(state.opportunity_id.as_str()),
    );
    if !state.fields.is_empty() {
        out.insert("fields".into(), fields_json(&state.fields));
    }
    if !state.stamps.is_empty() {
        out.insert("stamps".into(), pack_stamps(state));
    }
    if !state.timeline.is_empty() {
        out.insert("timeline".into(), pack_timeline(state));
    }
    if !state.base.is_empty() {
        out.insert("base".into(), fields_json(&state.base));
    }
    // In the model's field order, as `state_to_json` writes them (so the
    // bytes, not only the values, are the Python engine's).
    let int = |out: &mut Map<String, Value>, key: &str, value: i64| {
        if value != 0 {
            out.insert(key.into(), Value::from(value));
        }
    };
    let opt = |out: &mut Map<String, Value>, key: &str, value: Option<i64>| {
        if let Some(value) = value {
            out.insert(key.into(), Value::from(value));
        }
    };
    int(&mut out, "base_stamp", state.base_stamp);
    opt(&mut out, "stage_entered_ms", state.stage_entered_ms);
    int(&mut out, "close_pushes", state.close_pushes);
    int(&mut out, "close_slip_days", state.close_slip_days);
    opt(&mut out, "last_activity_ms", state.last_activity_ms);
    if !state.contacts.is_empty() {
        out.insert("contacts".into(), json!(state.contacts));
    }
    opt(&mut out, "created_ms", state.created_ms);
    int(&mut out, "high_water_ms", state.high_water_ms);
    int(&mut out, "gap_stamp", state.gap_stamp);
    int(&mut out, "full_stamp", state.full_stamp);
    if let Some(into) = &state.merged_into {
        out.insert("merged_into".into(), Value::from(into.as_str()));
    }
    opt(&mut out, "next_due_ms", state.next_due_ms);
    if !state.open_alerts.is_empty() {
        let alerts: Map<String, Value> = state
            .open_alerts
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        out.insert("open_alerts".into(), Value::Object(alerts));
    }
    Value::Object(out)
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
