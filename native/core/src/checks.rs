//! The hygiene checks (processor/rules/checks.py): the conditions that hold
//! for one opportunity at one moment. Texts are Python's, character for
//! character, since they are published.

use crate::clock::{add_days, days_between, DAY_MS};
use crate::gate::{check_gate, fields_with_own_rule, rule_applies};
use crate::junk::is_blank;
use crate::names::{self, Name};
use crate::pyvalue::{self, format_g, format_thousands, repr, str_of};
use crate::rules::{Pipeline, RuleSet, Stage};
use crate::state::{get, text, Fields, OpportunityState};
use serde_json::{json, Map, Value};

pub struct Finding {
    pub rule_id: &'static str,
    pub title: String,
    pub message: String,
    pub fix: String,
    pub details: Map<String, Value>,
}

fn finding(
    rule_id: &'static str,
    title: String,
    message: String,
    fix: &str,
    details: Value,
) -> Finding {
    let details = match details {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Finding {
        rule_id,
        title,
        message,
        fix: fix.to_owned(),
        details,
    }
}

/// Check groups, the unit of incremental evaluation, as bits.
pub type Groups = u16;
pub const GATE: Groups = 1;
pub const ACTIVITY: Groups = 1 << 1;
pub const TIME_IN_STAGE: Groups = 1 << 2;
pub const CLOSE_DATE: Groups = 1 << 3;
pub const NEXT_MEETING: Groups = 1 << 4;
pub const FORECAST: Groups = 1 << 5;
pub const AMOUNT: Groups = 1 << 6;
pub const NEXT_STEP: Groups = 1 << 7;
pub const THREADING: Groups = 1 << 8;
pub const TIME_GROUPS: Groups = ACTIVITY | TIME_IN_STAGE | CLOSE_DATE | NEXT_MEETING | NEXT_STEP;

/// The group that decides each rule id (None: decided only by a full evaluation).
pub fn group_of(rule_id: &str) -> Option<Groups> {
    Some(match rule_id {
        "stage_gate_missing_fields" | "stage_gate_junk_values" => GATE,
        "stale_close_out" | "stale_no_activity" => ACTIVITY,
        "stale_in_stage" => TIME_IN_STAGE,
        "close_date_past" | "parked_close_date" | "close_date_slipping" => CLOSE_DATE,
        "next_meeting_missing" => NEXT_MEETING,
        "forecast_category_mismatch" => FORECAST,
        "amount_invalid" => AMOUNT,
        "next_step_missing" => NEXT_STEP,
        "single_threaded" => THREADING,
        _ => return None,
    })
}

pub const STRUCTURAL_FIELDS: [Name; 3] = [names::STAGE, names::PIPELINE, names::DELETED];

/// Field -> the groups that read it: the static table plus every field a
/// stage's gate requires.
pub fn field_groups(rules: &RuleSet) -> rustc_hash::FxHashMap<Name, Groups> {
    let mut table: rustc_hash::FxHashMap<Name, Groups> = [
        (names::AMOUNT, AMOUNT | THREADING),
        (names::CONTACT_COUNT, THREADING),
        (names::CLOSE_DATE, CLOSE_DATE),
        (names::NEXT_MEETING_DATE, NEXT_MEETING),
        (names::NEXT_STEP, NEXT_STEP),
        (names::NEXT_STEP_DATE, NEXT_STEP),
        (names::FORECAST_CATEGORY, FORECAST),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for pipeline in &rules.pipelines {
        for required in &pipeline.required_by_position {
            for name in required {
                *table.entry(*name).or_insert(0) |= GATE;
            }
        }
    }
    table
}

struct Context<'a> {
    state: &'a OpportunityState,
    values: &'a Fields,
    pipeline: &'a Pipeline,
    position: usize,
    stage: &'a Stage,
    now_ms: i64,
    today: String,
}

impl Context<'_> {
    fn applies(&self, rule_id: &str) -> bool {
        rule_applies(self.pipeline, self.position, rule_id)
    }
}

fn names(items: &[Name]) -> String {
    let texts: Vec<&str> = items.iter().map(|n| n.as_str()).collect();
    texts.join(", ")
}

fn gate(ctx: &Context, rules: &RuleSet, found: &mut Vec<Finding>) {
    let verdict = check_gate(ctx.pipeline, ctx.position, ctx.values, &rules.junk);
    if verdict.missing.is_empty() && verdict.junk.is_empty() {
        return;
    }
    let owned = fields_with_own_rule(ctx.pipeline, ctx.position);
    let missing: Vec<Name> = verdict
        .missing
        .iter()
        .copied()
        .filter(|n| !owned.contains(n))
        .collect();
    let stage = &ctx.stage.name;
    if !missing.is_empty() {
        let verb = if missing.len() == 1 { "is" } else { "are" };
        found.push(finding(
            "stage_gate_missing_fields",
            format!("{stage} without its entry criteria"),
            format!(
                "The deal is in {stage} but {} {verb} empty.",
                names(&missing)
            ),
            &format!(
                "Fill in {}, or move the deal back to the stage it qualifies for.",
                names(&missing)
            ),
            json!({"missing_fields": missing, "stage": stage}),
        ));
    }
    if !verdict.junk.is_empty() {
        let filler = &verdict.junk;
        let mut shown = Map::new();
        for name in filler {
            shown.insert(
                name.as_str().to_owned(),
                ctx.values.get(name).cloned().unwrap_or(Value::Null),
            );
        }
        let listed: Vec<String> = shown
            .iter()
            .map(|(n, v)| format!("{n}={}", repr(v)))
            .collect();
        found.push(finding(
            "stage_gate_junk_values",
            "Placeholder values in required fields".into(),
            format!("Required fields hold filler: {}.", listed.join(", ")),
            &format!(
                "Replace the placeholder in {} with what you actually know.",
                names(filler)
            ),
            json!({"junk_fields": filler, "values": shown, "stage": stage}),
        ));
    }
}

fn activity(ctx: &Context, rules: &RuleSet, found: &mut Vec<Finding>) {
    let Some(last) = ctx.state.last_touch_ms() else {
        return;
    };
    let idle_days = (ctx.now_ms - last).div_euclid(DAY_MS);
    let close_out_days = ctx.pipeline.thresholds.close_out_no_activity_days;
    let last_day = rules.days.iso_day(last);
    if ctx.pipeline.enabled("stale_close_out") && idle_days > close_out_days {
        found.push(finding(
            "stale_close_out",
            format!("No activity for {idle_days} days: recommend closing as lost"),
            format!(
                "Nothing has been logged on this deal since {last_day} ({idle_days} days; the \
                 close-out threshold is {close_out_days})."
            ),
            &format!(
                "Close it as {}, or log the activity that proves it is alive.",
                ctx.pipeline.close_out_stage
            ),
            json!({"days_without_activity": idle_days, "last_activity": last_day,
                   "limit_days": close_out_days}),
        ));
        return;
    }
    let limit = ctx
        .stage
        .stale_after_days
        .or(ctx.pipeline.thresholds.default_stale_after_days);
    if let Some(limit) = limit {
        if idle_days > limit {
            found.push(finding(
                "stale_no_activity",
                format!("No activity for {idle_days} days"),
                format!(
                    "Nothing has been logged since {last_day}: {idle_days} days, over the \
                     {limit}-day limit for {}.",
                    ctx.stage.name
                ),
                "Log the latest call, email or meeting, or update the stage and close date to \
                 match reality.",
                json!({"days_without_activity": idle_days, "last_activity": last_day,
                       "limit_days": limit}),
            ));
        }
    }
}

fn time_in_stage(ctx: &Context, rules: &RuleSet, found: &mut Vec<Finding>) {
    let (Some(limit), Some(entered)) = (ctx.stage.max_days_in_stage, ctx.state.stage_entered_ms)
    else {
        return;
    };
    let days = (ctx.now_ms - entered).div_euclid(DAY_MS);
    if days <= limit {
        return;
    }
    let entered_day = rules.days.iso_day(entered);
    let stage = &ctx.stage.name;
    found.push(finding(
        "stale_in_stage",
        format!("{days} days in {stage}"),
        format!(
            "The deal entered {stage} on {entered_day}, {days} days ago; the limit is {limit}."
        ),
        "Advance it if the exit criteria are met, move it back if not, or close it out.",
        json!({"days_in_stage": days, "limit_days": limit, "entered": entered_day}),
    ));
}

fn close_date(ctx: &Context, rules: &RuleSet, found: &mut Vec<Finding>) {
    let t = &ctx.pipeline.thresholds;
    let close = get(ctx.values, names::CLOSE_DATE);
    let placeholder = close.is_some_and(|c| rules.junk.is_placeholder_date(c));
    if let (Some(Value::String(close)), false) = (close, placeholder) {
        let today = ctx.today.as_str();
        if close.as_str() < today {
            found.push(finding(
                "close_date_past",
                "Close date in the past".into(),
                format!(
                    "The close date {close} passed {} days ago and the deal is still open.",
                    days_between(close, today).unwrap_or(0)
                ),
                "Close the deal as won or lost, or set the date it will really close.",
                json!({"close_date": close}),
            ));
        }
        let horizon = add_days(today, t.parked_close_date_days).unwrap_or_default();
        if close.as_str() > horizon.as_str() {
            found.push(finding(
                "parked_close_date",
                "Close date parked far out".into(),
                format!(
                    "The close date {close} is {} days away, beyond the {}-day planning horizon.",
                    days_between(today, close).unwrap_or(0),
                    t.parked_close_date_days
                ),
                "Set a realistic close date, or close the deal out instead of parking it.",
                json!({"close_date": close, "horizon_days": t.parked_close_date_days}),
            ));
        }
    }
    let slip = &t.close_date_slip;
    let state = ctx.state;
    if state.close_pushes > slip.max_pushes || state.close_slip_days > slip.max_days {
        found.push(finding(
            "close_date_slipping",
            "Close date keeps slipping".into(),
            format!(
                "The close date was pushed out {} times, {} days in all (limits: {} pushes, {} \
                 days).",
                state.close_pushes, state.close_slip_days, slip.max_pushes, slip.max_days
            ),
            "Re-qualify the deal with the buyer: confirm the decision date and the paper \
             process, then set one date you can defend.",
            json!({"pushes": state.close_pushes, "slip_days": state.close_slip_days}),
        ));
    }
}

fn next_meeting(ctx: &Context, _rules: &RuleSet, found: &mut Vec<Finding>) {
    if !ctx.applies("next_meeting_missing") {
        return;
    }
    let meeting = get(ctx.values, names::NEXT_MEETING_DATE);
    if let Some(Value::String(m)) = meeting {
        if m.as_str() >= ctx.today.as_str() {
            return;
        }
    }
    let what = match meeting {
        None => "no next meeting".to_owned(),
        Some(m) => format!("the next meeting date {} has passed", str_of(m)),
    };
    found.push(finding(
        "next_meeting_missing",
        "No next meeting booked".into(),
        format!("The deal is in {} with {what}.", ctx.stage.name),
        "Book the next meeting with the buyer and record its date.",
        json!({"next_meeting_date": meeting}),
    ));
}

const CATEGORY_RANK: [(&str, i32); 5] = [
    ("Omitted", 0),
    ("Pipeline", 1),
    ("Best Case", 2),
    ("Commit", 3),
    ("Closed", 4),
];

fn forecast(ctx: &Context, rules: &RuleSet, found: &mut Vec<Finding>) {
    let Some(raw) = get(ctx.values, names::FORECAST_CATEGORY) else {
        return;
    };
    let category = rules.standard_category(Some(raw));
    let allowed: Vec<String> = match &ctx.stage.allowed_forecast_categories {
        Some(allowed) => allowed.clone(),
        None => {
            let ceiling = CATEGORY_RANK
                .iter()
                .find(|(c, _)| *c == ctx.stage.forecast_category)
                .map_or(0, |(_, r)| *r);
            CATEGORY_RANK
                .iter()
                .filter(|(c, rank)| *rank <= ceiling && *c != "Closed")
                .map(|(c, _)| (*c).to_owned())
                .collect()
        }
    };
    if category.is_some_and(|c| allowed.iter().any(|a| a == c)) {
        return;
    }
    let shown = match category {
        Some(c) => Value::String(c.to_owned()),
        None => raw.clone(),
    };
    let stage = &ctx.stage.name;
    found.push(finding(
        "forecast_category_mismatch",
        format!("{} in {stage}", str_of(&shown)),
        format!(
            "The forecast category is {} but the deal is only in {stage}, where {} is expected.",
            repr(&shown),
            allowed.join(" or ")
        ),
        &format!(
            "Set the forecast category to {}, or advance the stage if the deal has really \
             progressed.",
            ctx.stage.forecast_category
        ),
        json!({"forecast_category": shown, "allowed": allowed}),
    ));
}

fn amount(ctx: &Context, _rules: &RuleSet, found: &mut Vec<Finding>) {
    if !ctx.applies("amount_invalid") {
        return;
    }
    let amount = get(ctx.values, names::AMOUNT);
    if amount.and_then(pyvalue::number).is_some_and(|a| a > 0.0) {
        return;
    }
    let what = match amount {
        None => "no amount".to_owned(),
        Some(a) => format!(
            "an amount of {}",
            format_g(pyvalue::number(a).unwrap_or(f64::NAN))
        ),
    };
    found.push(finding(
        "amount_invalid",
        "Amount missing or invalid".into(),
        format!("The deal is in {} with {what}.", ctx.stage.name),
        "Enter the expected contract value.",
        json!({"amount": amount}),
    ));
}

fn next_step(ctx: &Context, _rules: &RuleSet, found: &mut Vec<Finding>) {
    if !ctx.applies("next_step_missing") {
        return;
    }
    let step = get(ctx.values, names::NEXT_STEP);
    let due = get(ctx.values, names::NEXT_STEP_DATE);
    let blank = is_blank(step);
    let current = match due {
        None => true,
        Some(Value::String(d)) => d.as_str() >= ctx.today.as_str(),
        Some(_) => false,
    };
    if !blank && current {
        return;
    }
    let what = if blank {
        "no next step".to_owned()
    } else {
        format!(
            "a next step that was due on {}",
            due.map_or("None".into(), str_of)
        )
    };
    found.push(finding(
        "next_step_missing",
        "Next step missing or expired".into(),
        format!("The deal has {what}."),
        "Write the next concrete step and when it happens.",
        json!({"next_step": step, "next_step_date": due}),
    ));
}

fn threading(ctx: &Context, _rules: &RuleSet, found: &mut Vec<Finding>) {
    let t = &ctx.pipeline.thresholds.single_threaded;
    let Some(amount) = get(ctx.values, names::AMOUNT).and_then(pyvalue::number) else {
        return;
    };
    if amount < t.min_amount {
        return;
    }
    // max(len(contacts), contact_count or 0) keeps the winner's type.
    let contacts = Value::from(ctx.state.contacts.len() as i64);
    let counted = ctx
        .values
        .get(&names::CONTACT_COUNT)
        .filter(|v| pyvalue::truthy(v))
        .cloned();
    let engaged = match counted {
        Some(c) if pyvalue::number(&c).unwrap_or(0.0) > ctx.state.contacts.len() as f64 => c,
        _ => contacts,
    };
    let engaged_n = pyvalue::number(&engaged).unwrap_or(0.0);
    if engaged_n >= t.min_contacts as f64 {
        return;
    }
    let plural = if engaged_n != 1.0 { "s" } else { "" };
    found.push(finding(
        "single_threaded",
        "Big deal, single-threaded".into(),
        format!(
            "A {} deal has {} engaged contact{plural}; deals above {} need at least {}.",
            format_thousands(amount),
            str_of(&engaged),
            format_thousands(t.min_amount),
            t.min_contacts
        ),
        "Get a second stakeholder involved (economic buyer, champion's peer) and log the \
         contact on the deal.",
        json!({"engaged_contacts": engaged, "min_contacts": t.min_contacts}),
    ));
}

fn resync() -> Finding {
    finding(
        "resync_required",
        "CRM change stream lost data".into(),
        "The CRM reported a gap in its change stream for this deal, so some values may be out \
         of date."
            .into(),
        "Run a bulk export (or trigger a resync) so the processor sees the full record.",
        json!({}),
    )
}

fn unknown_stage(raw: &str, pipeline: &Pipeline) -> Finding {
    let shown = pyvalue::str_repr(raw);
    finding(
        "unknown_stage",
        format!("Unknown stage {shown}"),
        format!(
            "The stage {shown} is not in the rules for pipeline {}, so its gates and limits \
             cannot be checked.",
            pipeline.id
        ),
        "Add the stage (or an alias) to the rules file, or fix the stage in the CRM.",
        json!({"stage": raw, "pipeline": pipeline.id}),
    )
}

type Check = fn(&Context, &RuleSet, &mut Vec<Finding>);

const CHECKS: [(Groups, Check); 9] = [
    (GATE, gate),
    (ACTIVITY, activity),
    (TIME_IN_STAGE, time_in_stage),
    (CLOSE_DATE, close_date),
    (NEXT_MEETING, next_meeting),
    (FORECAST, forecast),
    (AMOUNT, amount),
    (NEXT_STEP, next_step),
    (THREADING, threading),
];

fn excluded(state: &OpportunityState) -> bool {
    state
        .fields
        .get(&names::DELETED)
        .is_some_and(pyvalue::truthy)
        || state.merged_into.is_some()
}

/// The conditions that hold at `now_ms`, in check order; with `groups`,
/// only those checks run and the answer covers only their rule ids.
pub fn evaluate(
    state: &OpportunityState,
    rules: &RuleSet,
    now_ms: i64,
    groups: Option<Groups>,
) -> Vec<Finding> {
    if excluded(state) {
        return Vec::new();
    }
    let values = &state.fields;
    let mut found = Vec::new();
    let pipeline = rules.pipeline_for(get(values, names::PIPELINE));
    if groups.is_none() && state.needs_resync() {
        found.push(resync());
    }
    let raw_stage = text(values, names::STAGE);
    match pipeline.stage_position(raw_stage) {
        None => {
            if let (None, Some(raw)) = (groups, raw_stage) {
                found.push(unknown_stage(raw, pipeline));
            }
        }
        Some(position) if !pipeline.stages[position].closed => {
            let ctx = Context {
                state,
                values,
                pipeline,
                position,
                stage: &pipeline.stages[position],
                now_ms,
                today: rules.days.iso_day(now_ms),
            };
            for (group, check) in CHECKS {
                if groups.is_none_or(|g| g & group != 0) {
                    check(&ctx, rules, &mut found);
                }
            }
        }
        Some(_) => {}
    }
    found.retain(|f| pipeline.enabled(f.rule_id));
    found
}

/// The earliest time after `now_ms` at which a time-driven condition could
/// change (conservative), or None when none can.
pub fn next_due(state: &OpportunityState, rules: &RuleSet, now_ms: i64) -> Option<i64> {
    if excluded(state) {
        return None;
    }
    let values = &state.fields;
    let pipeline = rules.pipeline_for(get(values, names::PIPELINE));
    let position = pipeline.stage_position(text(values, names::STAGE))?;
    let stage = &pipeline.stages[position];
    if stage.closed {
        return None;
    }
    let t = &pipeline.thresholds;
    let mut candidates = Vec::with_capacity(6);
    if let Some(last) = state.last_touch_ms() {
        for days in [
            stage.stale_after_days.or(t.default_stale_after_days),
            Some(t.close_out_no_activity_days),
        ]
        .into_iter()
        .flatten()
        {
            candidates.push(last + (days + 1) * DAY_MS);
        }
    }
    if let (Some(limit), Some(entered)) = (stage.max_days_in_stage, state.stage_entered_ms) {
        candidates.push(entered + (limit + 1) * DAY_MS);
    }
    if let Some(close) = text(values, names::CLOSE_DATE) {
        if let Some(close_ms) = rules.days.day_start_ms(close) {
            candidates.push(close_ms + DAY_MS);
            candidates.push(close_ms - t.parked_close_date_days * DAY_MS);
        }
    }
    for name in [names::NEXT_MEETING_DATE, names::NEXT_STEP_DATE] {
        if let Some(due) = text(values, name) {
            if let Some(due_ms) = rules.days.day_start_ms(due) {
                candidates.push(due_ms + DAY_MS);
            }
        }
    }
    candidates.into_iter().filter(|&c| c > now_ms).min()
}
