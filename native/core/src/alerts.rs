//! Published records (processor/core/alerts.py and the engine's history
//! records), written as the JSON pydantic's `model_dump(mode="json")` gives.

use crate::checks::Finding;
use crate::clock::{iso, parse_date, render_datetime};
use crate::names;
use crate::pyvalue;
use crate::rules::{Pipeline, RuleSet};
use crate::state::{get, text, OpportunityState};
use crate::timeline::{record_id, Transition};
use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use serde_json::{json, Value};

pub fn alert_id(opportunity_id: &str, rule_id: &str, opened_ms: i64) -> String {
    let mut hasher = Blake2bVar::new(10).expect("10 bytes is a valid BLAKE2b digest size");
    hasher.update(format!("{opportunity_id}\u{1f}{rule_id}\u{1f}{opened_ms}").as_bytes());
    let mut digest = [0u8; 10];
    hasher
        .finalize_variable(&mut digest)
        .expect("the buffer is the digest size");
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("al_{hex}")
}

/// A float field: pydantic turns ints and bools into floats.
fn float(value: Option<&Value>) -> Value {
    match value.and_then(pyvalue::number) {
        Some(x) => json!(x),
        None => value.cloned().unwrap_or(Value::Null),
    }
}

/// A date field: pydantic parses the ISO string and writes it back.
fn date(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(s)) => match parse_date(s) {
            Some(d) => Value::String(iso(d)),
            None => Value::String(s.clone()),
        },
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

fn datetime(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(render_datetime(ms)))
}

pub fn build_alert(
    state: &OpportunityState,
    finding: &Finding,
    rules: &RuleSet,
    pipeline: &Pipeline,
    opened_ms: i64,
    source_event_id: Option<&str>,
    identifier: Option<String>,
) -> Value {
    let values = &state.fields;
    let id =
        identifier.unwrap_or_else(|| alert_id(&state.opportunity_id, finding.rule_id, opened_ms));
    json!({
        "kind": "alert",
        "alert_id": id,
        "opportunity_id": state.opportunity_id,
        "opportunity_name": get(values, names::NAME),
        "pipeline": pipeline.id,
        "stage": pipeline.canonical_stage(text(values, names::STAGE)),
        "owner_id": get(values, names::OWNER_ID),
        "manager_id": rules.manager_of(values),
        "amount": float(get(values, names::AMOUNT)),
        "currency": get(values, names::CURRENCY),
        "close_date": date(get(values, names::CLOSE_DATE)),
        "rule_id": finding.rule_id,
        "ruleset_version": rules.version,
        "severity": pipeline.severity_of(finding.rule_id),
        "title": finding.title,
        "message": finding.message,
        "fix": finding.fix,
        "details": finding.details,
        "opened_at": render_datetime(opened_ms),
        "source_event_id": source_event_id,
        "delivery": "realtime",
        "delivery_reason": null,
    })
}

pub fn build_resolution(
    state: &OpportunityState,
    rule_id: &str,
    opened_ms: i64,
    rules: &RuleSet,
    resolved_ms: i64,
    reason: &str,
    source_event_id: Option<&str>,
) -> Value {
    json!({
        "kind": "resolution",
        "alert_id": alert_id(&state.opportunity_id, rule_id, opened_ms),
        "opportunity_id": state.opportunity_id,
        "owner_id": get(&state.fields, names::OWNER_ID),
        "rule_id": rule_id,
        "ruleset_version": rules.version,
        "resolved_at": render_datetime(resolved_ms),
        "reason": reason,
        "source_event_id": source_event_id,
    })
}

pub fn build_close_out(
    state: &OpportunityState,
    alert: &Value,
    pipeline: &Pipeline,
    rules: &RuleSet,
) -> Value {
    let last = state.last_touch_ms();
    let alert_id = alert["alert_id"].as_str().unwrap_or_default();
    let days = alert["details"]
        .get("days_without_activity")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    json!({
        "kind": "close_out_recommendation",
        "command_id": alert_id.replacen("al_", "cmd_", 1),
        "opportunity_id": state.opportunity_id,
        "opportunity_name": alert["opportunity_name"],
        "owner_id": alert["owner_id"],
        "pipeline": pipeline.id,
        "current_stage": alert["stage"],
        "recommended_stage": pipeline.close_out_stage,
        "amount": alert["amount"],
        "currency": alert["currency"],
        "days_without_activity": days,
        "last_activity_at": datetime(last),
        "issued_at": alert["opened_at"],
        "ruleset_version": rules.version,
        "reason": alert["message"],
    })
}

pub fn history_record(state: &OpportunityState, t: &Transition, retracted: bool) -> Value {
    let entered = t.previous_entered_ms;
    let left = t.previous_stage.as_ref().map(|_| t.at_ms);
    let seconds = match (left, entered) {
        (Some(l), Some(e)) => Some((l - e).div_euclid(1000)),
        _ => None,
    };
    json!({
        "record_id": record_id(&state.opportunity_id, &t.event_id),
        "opportunity_id": state.opportunity_id,
        "pipeline": t.pipeline,
        "transition": t.kind,
        "previous_stage": t.previous_stage,
        "new_stage": t.new_stage,
        "previous_stage_entered_at": datetime(entered),
        "previous_stage_left_at": datetime(left),
        "seconds_in_previous_stage": seconds,
        "transitioned_at": render_datetime(t.at_ms),
        "event_order": t.stamp,
        "amount": float(t.amount.as_ref()),
        "currency": t.currency,
        "close_date": date(t.close_date.as_ref()),
        "forecast_category": t.forecast_category,
        "owner_id": t.owner_id,
        "is_closed": t.is_closed,
        "is_won": t.is_won,
        "close_date_push_count": t.pushes,
        "source_event_id": t.event_id,
        "retracted": retracted,
    })
}
