//! Published records (processor/core/alerts.py and the engine's history
//! records), written as the JSON pydantic's `model_dump(mode="json")` gives.

use crate::checks::Finding;
use crate::clock::render_datetime;
use crate::names;
use crate::pyvalue;
use crate::rules::{Pipeline, RuleSet};
use crate::state::{get, text, OpportunityState};
use crate::timeline::{record_id, Transition};
use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use serde::Serialize;
use serde_json::{Map, Value};

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
fn float(value: Option<&Value>) -> Option<Value> {
    value.map(|v| pyvalue::number(v).map_or_else(|| v.clone(), Value::from))
}

fn datetime(ms: Option<i64>) -> Option<String> {
    ms.map(render_datetime)
}

fn to_json<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("a record of JSON values serializes")
}

/// schemas.alerts.Alert. A date field needs no conversion: the checks only
/// ever hold ISO `YYYY-MM-DD` text there, which is what pydantic writes back.
#[derive(Serialize)]
pub struct AlertRecord<'a> {
    kind: &'static str,
    alert_id: String,
    opportunity_id: &'a str,
    opportunity_name: Option<&'a Value>,
    pipeline: &'a str,
    stage: Option<String>,
    owner_id: Option<&'a Value>,
    manager_id: Option<String>,
    amount: Option<Value>,
    currency: Option<&'a Value>,
    close_date: Option<&'a Value>,
    rule_id: &'a str,
    ruleset_version: &'a str,
    severity: &'a str,
    title: &'a str,
    message: &'a str,
    fix: &'a str,
    details: &'a Map<String, Value>,
    opened_at: String,
    source_event_id: Option<&'a str>,
    delivery: &'static str,
    delivery_reason: Option<&'static str>,
    #[serde(skip)]
    days_without_activity: i64,
}

impl AlertRecord<'_> {
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }
}

pub fn build_alert<'a>(
    state: &'a OpportunityState,
    finding: &'a Finding,
    rules: &'a RuleSet,
    pipeline: &'a Pipeline,
    opened_ms: i64,
    source_event_id: Option<&'a str>,
    identifier: Option<String>,
) -> AlertRecord<'a> {
    let values = &state.fields;
    AlertRecord {
        kind: "alert",
        alert_id: identifier
            .unwrap_or_else(|| alert_id(&state.opportunity_id, finding.rule_id, opened_ms)),
        opportunity_id: &state.opportunity_id,
        opportunity_name: get(values, names::NAME),
        pipeline: &pipeline.id,
        stage: pipeline.canonical_stage(text(values, names::STAGE)),
        owner_id: get(values, names::OWNER_ID),
        manager_id: rules.manager_of(values),
        amount: float(get(values, names::AMOUNT)),
        currency: get(values, names::CURRENCY),
        close_date: get(values, names::CLOSE_DATE),
        rule_id: finding.rule_id,
        ruleset_version: &rules.version,
        severity: pipeline.severity_of(finding.rule_id),
        title: &finding.title,
        message: &finding.message,
        fix: &finding.fix,
        details: &finding.details,
        opened_at: render_datetime(opened_ms),
        source_event_id,
        delivery: "realtime",
        delivery_reason: None,
        days_without_activity: finding
            .details
            .get("days_without_activity")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    }
}

#[derive(Serialize)]
struct ResolutionRecord<'a> {
    kind: &'static str,
    alert_id: String,
    opportunity_id: &'a str,
    owner_id: Option<&'a Value>,
    rule_id: &'a str,
    ruleset_version: &'a str,
    resolved_at: String,
    reason: &'a str,
    source_event_id: Option<&'a str>,
}

pub fn build_resolution(
    state: &OpportunityState,
    rule_id: &str,
    opened_ms: i64,
    rules: &RuleSet,
    resolved_ms: i64,
    reason: &str,
    source_event_id: Option<&str>,
) -> Vec<u8> {
    to_json(&ResolutionRecord {
        kind: "resolution",
        alert_id: alert_id(&state.opportunity_id, rule_id, opened_ms),
        opportunity_id: &state.opportunity_id,
        owner_id: get(&state.fields, names::OWNER_ID),
        rule_id,
        ruleset_version: &rules.version,
        resolved_at: render_datetime(resolved_ms),
        reason,
        source_event_id,
    })
}

#[derive(Serialize)]
struct CloseOutRecord<'a> {
    kind: &'static str,
    command_id: String,
    opportunity_id: &'a str,
    opportunity_name: Option<&'a Value>,
    owner_id: Option<&'a Value>,
    pipeline: &'a str,
    current_stage: Option<&'a str>,
    recommended_stage: &'a str,
    amount: Option<&'a Value>,
    currency: Option<&'a Value>,
    days_without_activity: i64,
    last_activity_at: Option<String>,
    issued_at: &'a str,
    ruleset_version: &'a str,
    reason: &'a str,
}

pub fn build_close_out(
    state: &OpportunityState,
    alert: &AlertRecord<'_>,
    pipeline: &Pipeline,
    rules: &RuleSet,
) -> Vec<u8> {
    to_json(&CloseOutRecord {
        kind: "close_out_recommendation",
        command_id: alert.alert_id.replacen("al_", "cmd_", 1),
        opportunity_id: &state.opportunity_id,
        opportunity_name: alert.opportunity_name,
        owner_id: alert.owner_id,
        pipeline: &pipeline.id,
        current_stage: alert.stage.as_deref(),
        recommended_stage: &pipeline.close_out_stage,
        amount: alert.amount.as_ref(),
        currency: alert.currency,
        days_without_activity: alert.days_without_activity,
        last_activity_at: datetime(state.last_touch_ms()),
        issued_at: &alert.opened_at,
        ruleset_version: &rules.version,
        reason: alert.message,
    })
}

/// schemas.history.StageHistoryRecord.
#[derive(Serialize)]
struct HistoryRecord<'a> {
    record_id: String,
    opportunity_id: &'a str,
    pipeline: &'a str,
    transition: &'static str,
    previous_stage: Option<&'a str>,
    new_stage: Option<&'a str>,
    previous_stage_entered_at: Option<String>,
    previous_stage_left_at: Option<String>,
    seconds_in_previous_stage: Option<i64>,
    transitioned_at: String,
    event_order: i64,
    amount: Option<Value>,
    currency: Option<&'a Value>,
    close_date: Option<&'a Value>,
    forecast_category: Option<&'a str>,
    owner_id: Option<&'a Value>,
    is_closed: bool,
    is_won: bool,
    close_date_push_count: i64,
    source_event_id: &'a str,
    retracted: bool,
}

pub fn history_record(state: &OpportunityState, t: &Transition, retracted: bool) -> Vec<u8> {
    let entered = t.previous_entered_ms;
    let left = t.previous_stage.as_ref().map(|_| t.at_ms);
    let seconds = match (left, entered) {
        (Some(l), Some(e)) => Some((l - e).div_euclid(1000)),
        _ => None,
    };
    to_json(&HistoryRecord {
        record_id: record_id(&state.opportunity_id, &t.event_id),
        opportunity_id: &state.opportunity_id,
        pipeline: &t.pipeline,
        transition: t.kind,
        previous_stage: t.previous_stage.as_deref(),
        new_stage: t.new_stage.as_deref(),
        previous_stage_entered_at: datetime(entered),
        previous_stage_left_at: datetime(left),
        seconds_in_previous_stage: seconds,
        transitioned_at: render_datetime(t.at_ms),
        event_order: t.stamp,
        amount: float(t.amount.as_ref()),
        currency: t.currency.as_ref(),
        close_date: t.close_date.as_ref(),
        forecast_category: t.forecast_category.as_deref(),
        owner_id: t.owner_id.as_ref(),
        is_closed: t.is_closed,
        is_won: t.is_won,
        close_date_push_count: t.pushes,
        source_event_id: &t.event_id,
        retracted,
    })
}
