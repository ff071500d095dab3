"""Applying changes and the passage of time to one opportunity's state.

``apply`` and ``sweep`` are the only two ways state moves. Both mutate the
state they are given (the caller owns it and writes it back when
``Outcome.changed``) and return what to publish. Neither reads a clock or does
I/O: the stream, the replay command and the tests run exactly this code.
"""

from __future__ import annotations

from typing import Any

from processor.core import fields as f
from processor.core import timeline
from processor.core.alerts import build_alert, build_close_out, build_resolution
from processor.core.clock import Days, from_ms, order_stamp, to_ms
from processor.core.outcome import Outcome
from processor.rules.checks import (
    ATTRIBUTE_GROUPS,
    STRUCTURAL_ATTRIBUTES,
    STRUCTURAL_FIELDS,
    TIME_GROUPS,
    Finding,
    evaluate,
    field_groups,
    next_due,
    rules_of,
)
from processor.rules.config import Pipeline, RuleSet
from schemas import OpportunityChange, OpportunityState, StageHistoryRecord

CONTACTS_CAP = 20
_TRACKED = (*f.TRACKED, f.DELETED)
_NOTHING: frozenset[str] = frozenset()

_SUMMARY = ("stage_entered_ms", "close_pushes", "close_slip_days")
"""Aggregates derived from the timeline (see ``_summarize``)."""

_DUE_INPUTS = TIME_GROUPS
"""``next_due`` reads only what the time-driven groups read (and structural
fields, which re-run everything)."""

_COVERED: dict[frozenset[str], frozenset[str]] = {}


def _covered(groups: frozenset[str]) -> frozenset[str]:
    """The rule ids decided by these groups (memoized: few combinations occur)."""
    covered = _COVERED.get(groups)
    if covered is None:
        covered = _COVERED[groups] = rules_of(groups)
    return covered


class Engine:
    """The rules engine bound to one rule set."""

    __slots__ = ("_field_groups", "rules")

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._field_groups = field_groups(rules)

    # ---- events -----------------------------------------------------------
    def apply(
        self, state: OpportunityState | None, change: OpportunityChange
    ) -> tuple[OpportunityState, Outcome]:
        outcome = Outcome()
        if state is None:
            state = OpportunityState(opportunity_id=change.opportunity_id)
            outcome.changed = True
        occurred = to_ms(change.occurred_at)
        stamp = order_stamp(occurred, change.sequence, change.event_id)
        values = _values_of(change)

        # Which check groups read something this change altered (None: all):
        # the rest keep their verdict, so evaluation costs what changed.
        dirty: set[str] | None = set()
        groups_of = self._field_groups
        for name, value in values.items():
            if _last_writer_wins(state, name, value, stamp):
                outcome.changed = True
                if name in STRUCTURAL_FIELDS:
                    dirty = None
                elif dirty is not None and name in groups_of:
                    dirty |= groups_of[name]
        touched = _merge_bookkeeping(state, change, occurred, stamp, values, self.rules.days)
        if touched:
            outcome.changed = True
        summary_before = [getattr(state, name) for name in _SUMMARY]

        tracked = {k: values[k] for k in _TRACKED if k in values}
        new_transitions: list[timeline.Transition] = []
        if tracked:
            rules = self.rules
            before = timeline.published(state, rules)
            known = len(before)
            position = timeline.insert(
                state, stamp, timeline.observation_id(change.event_id, tracked), tracked)
            if position >= 0:
                outcome.changed = True
                extended = (timeline.extend(state, rules)
                            if position == len(state.timeline) - 1 else None)
                if extended is not None:
                    # Appended in order: earlier transitions cannot have changed.
                    transitions, summary = extended
                    new_transitions = transitions[known:]
                    self._summarize(state, summary)
                    for transition in new_transitions:
                        outcome.history.append(
                            _history_record(state, transition, retracted=False))
                else:
                    new_transitions = self._republish(state, list(before), outcome)
                timeline.compact(state, rules)

        touched.update(name for name, old in zip(_SUMMARY, summary_before, strict=True)
                       if getattr(state, name) != old)
        if dirty is not None:
            if touched & STRUCTURAL_ATTRIBUTES:
                dirty = None
            else:
                for name in touched:
                    dirty |= ATTRIBUTE_GROUPS.get(name, _NOTHING)
        self._reconcile(state, state.high_water_ms, change.event_id, outcome,
                        None if dirty is None else frozenset(dirty))
        self._notices(state, new_transitions, change.event_id, outcome)
        return state, outcome

    # ---- time -------------------------------------------------------------
    def sweep(self, state: OpportunityState, now_ms: int) -> Outcome:
        """Re-evaluates time-driven rules at ``now_ms`` (never before the
        latest event seen, so a lagging clock cannot reopen what an event
        closed)."""
        outcome = Outcome()
        self._reconcile(state, max(now_ms, state.high_water_ms), None, outcome, _NOTHING)
        return outcome

    def next_due(self, state: OpportunityState, now_ms: int) -> int | None:
        """When a sweep next needs to look at this opportunity (None: never,
        until an event changes it)."""
        now_ms = max(now_ms, state.high_water_ms)
        evaluated = state.memo.evaluated
        if evaluated is not None and evaluated[0] <= now_ms and (
                evaluated[1] is None or now_ms < evaluated[1]):
            return evaluated[1]  # nothing fell due since: the same answer
        return next_due(state, self.rules, now_ms)

    def findings(self, state: OpportunityState, now_ms: int) -> dict[str, Finding]:
        return evaluate(state, self.rules, max(now_ms, state.high_water_ms))

    # ---- internals --------------------------------------------------------
    def _republish(
        self, state: OpportunityState, before: list[timeline.Transition], outcome: Outcome
    ) -> list[timeline.Transition]:
        after, summary = timeline.derive(state, self.rules)
        self._summarize(state, summary)
        previous = {t.event_id: t for t in before}
        current_ids = set()
        new: list[timeline.Transition] = []
        for transition in after:
            current_ids.add(transition.event_id)
            old = previous.get(transition.event_id)
            if old != transition:
                outcome.history.append(_history_record(state, transition, retracted=False))
                if old is None:
                    new.append(transition)
        for record_id, old in previous.items():
            if record_id not in current_ids:
                outcome.history.append(_history_record(state, old, retracted=True))
        return new

    @staticmethod
    def _summarize(state: OpportunityState, summary: timeline.Summary) -> None:
        state.stage_entered_ms = summary.stage_entered_ms
        state.close_pushes = summary.close_pushes
        state.close_slip_days = summary.close_slip_days

    def _reconcile(
        self,
        state: OpportunityState,
        now_ms: int,
        event_id: str | None,
        outcome: Outcome,
        dirty: frozenset[str] | None,
    ) -> None:
        """Alerts are the edges of the condition set: open what appeared,
        resolve what cleared.

        Only the ``dirty`` check groups are evaluated (None: all), plus the
        time-driven ones once the last evaluation's due time has passed. That
        is exact, not a heuristic: every other group reads nothing that
        changed, so its verdict (the open alerts it decided) still holds. The
        last evaluation lives beside the state in memory only; a state fresh
        from storage, or a clock behind that evaluation, evaluates in full."""
        rules = self.rules
        evaluated = state.memo.evaluated
        groups: frozenset[str] | None = dirty
        if evaluated is None or now_ms < evaluated[0]:
            groups = None
        elif groups is not None and evaluated[1] is not None and now_ms >= evaluated[1]:
            groups = groups | TIME_GROUPS
        if groups is not None and not groups:
            return
        found = evaluate(state, rules, now_ms, groups)
        if evaluated is not None and groups is not None and not groups & _DUE_INPUTS:
            due = evaluated[1]  # nothing a due time reads changed; it is still ahead
        else:
            due = next_due(state, rules, now_ms)
        state.memo.evaluated = (now_ms, due)
        open_alerts = state.open_alerts
        if not found and not open_alerts:
            return
        pipeline = rules.pipeline_for(state.fields.get(f.PIPELINE))
        covered = None if groups is None else _covered(groups)
        for rule_id in [r for r in open_alerts
                        if r not in found and (covered is None or r in covered)]:
            opened = open_alerts.pop(rule_id)
            reason = _resolution_reason(state, pipeline)
            outcome.alerts.append(
                build_resolution(state, rule_id, opened, rules, now_ms, reason, event_id)
            )
            outcome.changed = True
        for rule_id, finding in found.items():
            if rule_id in open_alerts:
                continue
            alert = build_alert(state, finding, rules, pipeline, now_ms, event_id)
            open_alerts[rule_id] = now_ms
            outcome.alerts.append(alert)
            if rule_id == "stale_close_out":
                outcome.commands.append(build_close_out(state, alert, pipeline, rules))
            outcome.changed = True

    def _notices(
        self,
        state: OpportunityState,
        transitions: list[timeline.Transition],
        event_id: str,
        outcome: Outcome,
    ) -> None:
        """Skips and regressions are informational one-offs: they describe a
        move, not a lasting condition, so they never open and never resolve."""
        rules = self.rules
        for transition in transitions:
            if transition.kind != "stage_changed":
                continue
            pipeline = rules.pipeline_for(state.fields.get(f.PIPELINE))
            old = pipeline.position_of(transition.previous_stage)
            new = pipeline.position_of(transition.new_stage)
            if old is None or new is None:
                continue
            finding = _move_finding(pipeline, old, new)
            if finding is None or not pipeline.enabled(finding.rule_id):
                continue
            record = timeline.record_id(state.opportunity_id, transition.event_id)
            identifier = "al_" + record.replace("-", "")[:20]
            outcome.alerts.append(
                build_alert(state, finding, rules, pipeline, transition.at_ms, event_id,
                            identifier=f"{identifier}_{finding.rule_id}")
            )


def _values_of(change: OpportunityChange) -> dict[str, Any]:
    op = change.op
    if op in ("upsert", "restore"):
        values = dict(change.fields)
        for name in change.nulled_fields:
            values[name] = None
        if op == "restore" or change.full:
            # A change carrying the whole record (a create, an export row)
            # says the record exists: newer than a delete, it undoes it.
            values[f.DELETED] = False
        return values
    if op in ("delete", "merge"):
        return {f.DELETED: True}
    return {}


def _last_writer_wins(state: OpportunityState, name: str, value: Any, stamp: int) -> bool:
    """Per field: the value with the newest stamp wins, whatever the arrival
    order. Equal stamps (the same event again) break ties on the value itself so
    that two orders can never end differently."""
    held = state.stamps.get(name)
    current = state.fields.get(name)
    if held is not None:
        if stamp < held:
            return False
        if stamp == held and (value == current or repr(value) <= repr(current)):
            return False
    state.stamps[name] = stamp
    if value is None:
        state.fields.pop(name, None)
        return current is not None
    state.fields[name] = value
    return bool(value != current)


def _merge_bookkeeping(
    state: OpportunityState,
    change: OpportunityChange,
    occurred: int,
    stamp: int,
    values: dict[str, Any],
    days: Days,
) -> set[str]:
    """Order-independent aggregates: maxima, minima and sets. Answers which
    attributes moved (high_water_ms too, which no check reads)."""
    touched: set[str] = set()
    activity: int | None = occurred if change.op == "activity" else None
    last_day = values.get(f.LAST_ACTIVITY_DATE)
    if isinstance(last_day, str):
        day_ms = days.day_start_ms(last_day)
        activity = day_ms if activity is None else max(activity, day_ms)
    if activity is not None and (state.last_activity_ms is None
                                 or activity > state.last_activity_ms):
        state.last_activity_ms = activity
        touched.add("last_activity_ms")
    for contact in change.contact_ids:
        if contact not in state.contacts:
            state.contacts.append(contact)
            state.contacts.sort()
            del state.contacts[CONTACTS_CAP:]
            touched.add("contacts")
    if change.full and stamp > state.full_stamp:
        state.full_stamp = stamp
        touched.add("full_stamp")
    if change.op == "gap" and stamp > state.gap_stamp:
        state.gap_stamp = stamp
        touched.add("gap_stamp")
    if change.op == "merge" and change.merged_into and state.merged_into != change.merged_into:
        state.merged_into = change.merged_into
        touched.add("merged_into")
    if state.created_ms is None or occurred < state.created_ms:
        state.created_ms = occurred
        touched.add("created_ms")
    if occurred > state.high_water_ms:
        state.high_water_ms = occurred
        touched.add("high_water_ms")
    return touched


def _resolution_reason(state: OpportunityState, pipeline: Pipeline) -> str:
    if state.merged_into is not None:
        return f"merged into {state.merged_into}"
    if state.fields.get(f.DELETED):
        return "deleted in the CRM"
    position = pipeline.stage_position(state.fields.get(f.STAGE))
    if position is not None and pipeline.stages[position].closed:
        return f"closed as {pipeline.stages[position].name}"
    return "condition cleared"


def _move_finding(pipeline: Pipeline, old: int, new: int) -> Finding | None:
    stages = pipeline.stages
    if stages[old].closed or stages[new].closed:
        if stages[old].closed and not stages[new].closed:
            return Finding(
                "stage_regressed", f"Reopened: {stages[old].name} -> {stages[new].name}",
                f"A closed deal was reopened into {stages[new].name}.",
                "Make sure the reopening is intended and the close date and amount are current.",
                {"from": stages[old].name, "to": stages[new].name},
            )
        return None
    if new < old:
        return Finding(
            "stage_regressed", f"Moved back: {stages[old].name} -> {stages[new].name}",
            f"The deal moved back from {stages[old].name} to {stages[new].name}.",
            "Record why in the next step, and check the close date and forecast category.",
            {"from": stages[old].name, "to": stages[new].name},
        )
    skipped = [s.name for s in stages[old + 1:new] if not s.closed]
    if skipped:
        return Finding(
            "stage_skipped", f"Skipped {', '.join(skipped)}",
            f"The deal jumped from {stages[old].name} to {stages[new].name}, skipping "
            f"{', '.join(skipped)}.",
            f"Confirm the exit criteria of {', '.join(skipped)} were met and fill in their "
            "fields.",
            {"from": stages[old].name, "to": stages[new].name, "skipped": skipped},
        )
    return None


def _history_record(
    state: OpportunityState, t: timeline.Transition, *, retracted: bool
) -> StageHistoryRecord:
    entered = t.previous_entered_ms
    left = t.at_ms if t.previous_stage is not None else None
    return StageHistoryRecord(
        record_id=timeline.record_id(state.opportunity_id, t.event_id),
        opportunity_id=state.opportunity_id,
        pipeline=t.pipeline,
        transition=t.kind,
        previous_stage=t.previous_stage,
        new_stage=t.new_stage,
        previous_stage_entered_at=from_ms(entered) if entered is not None else None,
        previous_stage_left_at=from_ms(left) if left is not None else None,
        seconds_in_previous_stage=(left - entered) // 1000
        if left is not None and entered is not None else None,
        transitioned_at=from_ms(t.at_ms),
        event_order=t.stamp,
        amount=t.amount,
        currency=t.currency,
        close_date=t.close_date,
        forecast_category=t.forecast_category,
        owner_id=t.owner_id,
        is_closed=t.is_closed,
        is_won=t.is_won,
        close_date_push_count=t.pushes,
        source_event_id=t.event_id,
        retracted=retracted,
    )
