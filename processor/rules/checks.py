"""The hygiene checks: what is wrong with one opportunity at one moment.

``evaluate`` answers with the set of conditions that hold now. Alerts are the
edges of that set (a condition appears: alert; it disappears: resolution), so
the event path and the scheduled sweep share one definition of every rule and
a repeated evaluation can never repeat an alert.

One problem, one alert: a field that has a dedicated rule (amount, next step,
next meeting) is left out of the generic missing-fields gate, a placeholder
close date is junk rather than "parked", and a close-out recommendation
supersedes the plain no-activity alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from processor.core import fields as f
from processor.core.clock import DAY_MS, add_days, days_between
from processor.rules.config import Pipeline, RuleSet, Stage
from processor.rules.gate import check_gate, fields_with_own_rule, rule_applies
from processor.rules.junk import is_blank
from schemas.state import OpportunityState

CATEGORY_RANK = {"Omitted": 0, "Pipeline": 1, "Best Case": 2, "Commit": 3, "Closed": 4}


@dataclass(slots=True)
class Finding:
    rule_id: str
    title: str
    message: str
    fix: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    """What every check needs, resolved once per evaluation."""

    state: OpportunityState
    values: dict[str, Any]
    pipeline: Pipeline
    position: int
    stage: Stage
    now_ms: int
    today: str

    def applies(self, rule_id: str) -> bool:
        """Whether a stage-bound rule applies from the current stage on."""
        return rule_applies(self.pipeline, self.position, rule_id)

    def last_touch_ms(self) -> int | None:
        """Last activity, or creation when nothing was ever logged: a deal
        nobody touched since it was created is stale too."""
        state = self.state
        return state.last_activity_ms if state.last_activity_ms is not None else state.created_ms


def _names(items: list[str]) -> str:
    return ", ".join(items)


def _gate(ctx: Context, rules: RuleSet) -> list[Finding]:
    verdict = check_gate(ctx.pipeline, ctx.position, ctx.values, rules.junk_detector)
    if verdict.passed:
        return []
    owned = fields_with_own_rule(ctx.pipeline, ctx.position)
    missing = [name for name in verdict.missing if name not in owned]
    filler = list(verdict.junk)
    found = []
    if missing:
        found.append(Finding(
            "stage_gate_missing_fields",
            f"{ctx.stage.name} without its entry criteria",
            f"The deal is in {ctx.stage.name} but {_names(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} empty.",
            f"Fill in {_names(missing)}, or move the deal back to the stage it qualifies for.",
            {"missing_fields": missing, "stage": ctx.stage.name},
        ))
    if filler:
        shown = {n: ctx.values.get(n) for n in filler}
        found.append(Finding(
            "stage_gate_junk_values",
            "Placeholder values in required fields",
            "Required fields hold filler: "
            + ", ".join(f"{n}={v!r}" for n, v in shown.items()) + ".",
            f"Replace the placeholder in {_names(filler)} with what you actually know.",
            {"junk_fields": filler, "values": shown, "stage": ctx.stage.name},
        ))
    return found


def _activity(ctx: Context, rules: RuleSet) -> list[Finding]:
    last = ctx.last_touch_ms()
    if last is None:
        return []
    idle_days = (ctx.now_ms - last) // DAY_MS
    close_out_days = ctx.pipeline.thresholds.close_out.no_activity_days
    last_day = rules.days.iso_day(last)
    if ctx.pipeline.enabled("stale_close_out") and idle_days > close_out_days:
        return [Finding(
            "stale_close_out",
            f"No activity for {idle_days} days: recommend closing as lost",
            f"Nothing has been logged on this deal since {last_day} ({idle_days} days; the "
            f"close-out threshold is {close_out_days}).",
            f"Close it as {ctx.pipeline.close_out_stage}, or log the activity that proves it "
            "is alive.",
            {"days_without_activity": idle_days, "last_activity": last_day,
             "limit_days": close_out_days},
        )]
    limit = ctx.stage.stale_after_days or ctx.pipeline.thresholds.default_stale_after_days
    if limit is not None and idle_days > limit:
        return [Finding(
            "stale_no_activity",
            f"No activity for {idle_days} days",
            f"Nothing has been logged since {last_day}: {idle_days} days, over the "
            f"{limit}-day limit for {ctx.stage.name}.",
            "Log the latest call, email or meeting, or update the stage and close date to "
            "match reality.",
            {"days_without_activity": idle_days, "last_activity": last_day, "limit_days": limit},
        )]
    return []


def _time_in_stage(ctx: Context, rules: RuleSet) -> list[Finding]:
    limit = ctx.stage.max_days_in_stage
    entered = ctx.state.stage_entered_ms
    if limit is None or entered is None:
        return []
    days = (ctx.now_ms - entered) // DAY_MS
    if days <= limit:
        return []
    return [Finding(
        "stale_in_stage",
        f"{days} days in {ctx.stage.name}",
        f"The deal entered {ctx.stage.name} on {rules.days.iso_day(entered)}, {days} days ago; "
        "the limit "
        f"is {limit}.",
        "Advance it if the exit criteria are met, move it back if not, or close it out.",
        {"days_in_stage": days, "limit_days": limit, "entered": rules.days.iso_day(entered)},
    )]


def _close_date(ctx: Context, rules: RuleSet) -> list[Finding]:
    found: list[Finding] = []
    close = ctx.values.get(f.CLOSE_DATE)
    t = ctx.pipeline.thresholds
    placeholder = rules.junk_detector.is_placeholder_date(close)
    if close is not None and not placeholder:
        if close < ctx.today:
            found.append(Finding(
                "close_date_past",
                "Close date in the past",
                f"The close date {close} passed {days_between(close, ctx.today)} days ago and "
                "the deal is still open.",
                "Close the deal as won or lost, or set the date it will really close.",
                {"close_date": close},
            ))
        horizon = add_days(ctx.today, t.parked_close_date_days)
        if close > horizon:
            found.append(Finding(
                "parked_close_date",
                "Close date parked far out",
                f"The close date {close} is {days_between(ctx.today, close)} days away, beyond "
                f"the {t.parked_close_date_days}-day planning horizon.",
                "Set a realistic close date, or close the deal out instead of parking it.",
                {"close_date": close, "horizon_days": t.parked_close_date_days},
            ))
    slip = t.close_date_slip
    state = ctx.state
    if state.close_pushes > slip.max_pushes or state.close_slip_days > slip.max_days:
        found.append(Finding(
            "close_date_slipping",
            "Close date keeps slipping",
            f"The close date was pushed out {state.close_pushes} times, "
            f"{state.close_slip_days} days in all (limits: {slip.max_pushes} pushes, "
            f"{slip.max_days} days).",
            "Re-qualify the deal with the buyer: confirm the decision date and the paper "
            "process, then set one date you can defend.",
            {"pushes": state.close_pushes, "slip_days": state.close_slip_days},
        ))
    return found


def _next_meeting(ctx: Context, rules: RuleSet) -> list[Finding]:
    if not ctx.applies("next_meeting_missing"):
        return []
    meeting = ctx.values.get(f.NEXT_MEETING_DATE)
    if meeting is not None and meeting >= ctx.today:
        return []
    what = "no next meeting" if meeting is None else f"the next meeting date {meeting} has passed"
    return [Finding(
        "next_meeting_missing",
        "No next meeting booked",
        f"The deal is in {ctx.stage.name} with {what}.",
        "Book the next meeting with the buyer and record its date.",
        {"next_meeting_date": meeting},
    )]


def _forecast_category(ctx: Context, rules: RuleSet) -> list[Finding]:
    raw = ctx.values.get(f.FORECAST_CATEGORY)
    if raw is None:
        return []
    category = rules.standard_category(raw)
    allowed = ctx.stage.allowed_forecast_categories
    if allowed is None:
        ceiling = CATEGORY_RANK[ctx.stage.forecast_category]
        allowed = [c for c, rank in CATEGORY_RANK.items() if rank <= ceiling and c != "Closed"]  # type: ignore[misc]
    if category is not None and category in allowed:
        return []
    shown = category or raw
    return [Finding(
        "forecast_category_mismatch",
        f"{shown} in {ctx.stage.name}",
        f"The forecast category is {shown!r} but the deal is only in {ctx.stage.name}, where "
        f"{' or '.join(allowed)} is expected.",
        f"Set the forecast category to {ctx.stage.forecast_category}, or advance the stage if "
        "the deal has really progressed.",
        {"forecast_category": shown, "allowed": list(allowed)},
    )]


def _amount(ctx: Context, rules: RuleSet) -> list[Finding]:
    if not ctx.applies("amount_invalid"):
        return []
    amount = ctx.values.get(f.AMOUNT)
    if amount is not None and amount > 0:
        return []
    what = "no amount" if amount is None else f"an amount of {amount:g}"
    return [Finding(
        "amount_invalid",
        "Amount missing or invalid",
        f"The deal is in {ctx.stage.name} with {what}.",
        "Enter the expected contract value.",
        {"amount": amount},
    )]


def _next_step(ctx: Context, rules: RuleSet) -> list[Finding]:
    if not ctx.applies("next_step_missing"):
        return []
    step = ctx.values.get(f.NEXT_STEP)
    due = ctx.values.get(f.NEXT_STEP_DATE)
    if not is_blank(step) and (due is None or due >= ctx.today):
        return []
    what = "no next step" if is_blank(step) else f"a next step that was due on {due}"
    return [Finding(
        "next_step_missing",
        "Next step missing or expired",
        f"The deal has {what}.",
        "Write the next concrete step and when it happens.",
        {"next_step": step, "next_step_date": due},
    )]


def _threading(ctx: Context, rules: RuleSet) -> list[Finding]:
    t = ctx.pipeline.thresholds.single_threaded
    amount = ctx.values.get(f.AMOUNT)
    if amount is None or amount < t.min_amount:
        return []
    engaged = max(len(ctx.state.contacts), ctx.values.get(f.CONTACT_COUNT) or 0)
    if engaged >= t.min_contacts:
        return []
    return [Finding(
        "single_threaded",
        "Big deal, single-threaded",
        f"A {amount:,.0f} deal has {engaged} engaged contact{'s' if engaged != 1 else ''}; "
        f"deals above {t.min_amount:,.0f} need at least {t.min_contacts}.",
        "Get a second stakeholder involved (economic buyer, champion's peer) and log the "
        "contact on the deal.",
        {"engaged_contacts": engaged, "min_contacts": t.min_contacts},
    )]


def _resync(state: OpportunityState) -> Finding:
    return Finding(
        "resync_required",
        "CRM change stream lost data",
        "The CRM reported a gap in its change stream for this deal, so some values may be "
        "out of date.",
        "Run a bulk export (or trigger a resync) so the processor sees the full record.",
        {},
    )


def _unknown_stage(raw: str, pipeline: Pipeline) -> Finding:
    return Finding(
        "unknown_stage",
        f"Unknown stage {raw!r}",
        f"The stage {raw!r} is not in the rules for pipeline {pipeline.id}, so its gates and "
        "limits cannot be checked.",
        "Add the stage (or an alias) to the rules file, or fix the stage in the CRM.",
        {"stage": raw, "pipeline": pipeline.id},
    )


def next_due(state: OpportunityState, rules: RuleSet, now_ms: int) -> int | None:
    """The earliest time after ``now_ms`` at which a time-driven condition of
    this opportunity could change, or None when none can. Conservative (it
    may name a moment where nothing flips, never miss one), so a sweep can
    skip every opportunity that is not yet due instead of evaluating it."""
    values = state.fields
    if values.get(f.DELETED) or state.merged_into is not None:
        return None
    pipeline = rules.pipeline_for(values.get(f.PIPELINE))
    position = pipeline.stage_position(values.get(f.STAGE))
    if position is None or pipeline.stages[position].closed:
        return None
    stage = pipeline.stages[position]
    t = pipeline.thresholds
    candidates: list[int] = []
    last = state.last_activity_ms if state.last_activity_ms is not None else state.created_ms
    if last is not None:
        for days in (stage.stale_after_days or t.default_stale_after_days,
                     t.close_out.no_activity_days):
            if days is not None:
                candidates.append(last + (days + 1) * DAY_MS)
    if stage.max_days_in_stage is not None and state.stage_entered_ms is not None:
        candidates.append(state.stage_entered_ms + (stage.max_days_in_stage + 1) * DAY_MS)
    close = values.get(f.CLOSE_DATE)
    if isinstance(close, str):
        close_ms = rules.days.day_start_ms(close)
        candidates.append(close_ms + DAY_MS)
        candidates.append(close_ms - t.parked_close_date_days * DAY_MS)
    for name in (f.NEXT_MEETING_DATE, f.NEXT_STEP_DATE):
        due = values.get(name)
        if isinstance(due, str):
            candidates.append(rules.days.day_start_ms(due) + DAY_MS)
    later = [c for c in candidates if c > now_ms]
    return min(later) if later else None


Check = Callable[[Context, RuleSet], list[Finding]]

CHECKS: dict[str, tuple[Check, frozenset[str]]] = {
    "gate": (_gate, frozenset({"stage_gate_missing_fields", "stage_gate_junk_values"})),
    "activity": (_activity, frozenset({"stale_close_out", "stale_no_activity"})),
    "time_in_stage": (_time_in_stage, frozenset({"stale_in_stage"})),
    "close_date": (_close_date, frozenset({"close_date_past", "parked_close_date",
                                           "close_date_slipping"})),
    "next_meeting": (_next_meeting, frozenset({"next_meeting_missing"})),
    "forecast": (_forecast_category, frozenset({"forecast_category_mismatch"})),
    "amount": (_amount, frozenset({"amount_invalid"})),
    "next_step": (_next_step, frozenset({"next_step_missing"})),
    "threading": (_threading, frozenset({"single_threaded"})),
}
"""Each check of an open stage and the rule ids it decides. A group is the
unit of incremental evaluation: a change re-runs only the groups that read
what it changed (see ``field_groups``)."""

TIME_GROUPS = frozenset({"activity", "time_in_stage", "close_date", "next_meeting", "next_step"})
"""Groups whose verdict can change with time alone; ``next_due`` says when."""

STRUCTURAL_FIELDS = frozenset({f.STAGE, f.PIPELINE, f.DELETED})
"""Fields that decide which checks apply at all: a change re-runs everything."""

_FIELD_GROUPS: dict[str, frozenset[str]] = {
    f.AMOUNT: frozenset({"amount", "threading"}),
    f.CONTACT_COUNT: frozenset({"threading"}),
    f.CLOSE_DATE: frozenset({"close_date"}),
    f.NEXT_MEETING_DATE: frozenset({"next_meeting"}),
    f.NEXT_STEP: frozenset({"next_step"}),
    f.NEXT_STEP_DATE: frozenset({"next_step"}),
    f.FORECAST_CATEGORY: frozenset({"forecast"}),
}


ATTRIBUTE_GROUPS: dict[str, frozenset[str]] = {
    "last_activity_ms": frozenset({"activity"}),
    "created_ms": frozenset({"activity"}),
    "contacts": frozenset({"threading"}),
    "stage_entered_ms": frozenset({"time_in_stage"}),
    "close_pushes": frozenset({"close_date"}),
    "close_slip_days": frozenset({"close_date"}),
}
"""State aggregates (not fields) the checks read, by the groups that read them."""

STRUCTURAL_ATTRIBUTES = frozenset({"gap_stamp", "full_stamp", "merged_into"})
"""Aggregates that decide which checks apply at all (resync, merged)."""


def field_groups(rules: RuleSet) -> dict[str, frozenset[str]]:
    """Field -> the check groups that read it (structural fields excluded):
    the static table plus every field some stage's gate requires."""
    table = dict(_FIELD_GROUPS)
    gate = frozenset({"gate"})
    for pipeline in rules.pipelines:
        for required in pipeline.required_by_position:
            for name in required:
                table[name] = table.get(name, frozenset()) | gate
    return table


def rules_of(groups: frozenset[str]) -> frozenset[str]:
    return frozenset().union(*(CHECKS[g][1] for g in groups))


def evaluate(
    state: OpportunityState,
    rules: RuleSet,
    now_ms: int,
    groups: frozenset[str] | None = None,
) -> dict[str, Finding]:
    """Conditions that hold for this opportunity at ``now_ms``; pure. With
    ``groups``, only those checks run (the caller knows nothing else they
    read changed), and the answer covers only their rule ids."""
    values = state.fields
    if values.get(f.DELETED) or state.merged_into is not None:
        return {}
    found: list[Finding] = []
    pipeline = rules.pipeline_for(values.get(f.PIPELINE))
    if groups is None and state.needs_resync:
        found.append(_resync(state))
    raw_stage = values.get(f.STAGE)
    position = pipeline.stage_position(raw_stage)
    if position is None:
        if groups is None and raw_stage is not None:
            found.append(_unknown_stage(raw_stage, pipeline))
    elif not pipeline.stages[position].closed:
        ctx = Context(state, values, pipeline, position, pipeline.stages[position], now_ms,
                      rules.days.iso_day(now_ms))
        for name, (check, _) in CHECKS.items():
            if groups is None or name in groups:
                found += check(ctx, rules)
    return {x.rule_id: x for x in found if pipeline.enabled(x.rule_id)}
