"""Planted data-quality problems, and the truth a correct engine must find.

Planting changes a few knobs of a deal's ``Spec``; the truth is then derived,
not asserted: ``Oracle`` folds the finished canonical story and evaluates
every rule at ``as_of``, so a planted problem that implies others (a deal
silent for 60 days is also stale, and has sat too long in its stage) is
recorded with all of them. The oracle is deliberately independent of the
processor's rules engine: it is the reference the end-to-end tests hold the
engine to, and ``Verdict.doubts`` lets the generator redraw any deal whose
numbers sit so close to a threshold that two correct engines could disagree
(whole days against hours, ``>`` against ``>=``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from processor.core import fields as f
from processor.rules.config import Pipeline, RuleSet, Stage

from .story import DAY, Change, Spec, Window, day_of, ordinal_of, stale_after

PATHOLOGIES: Final = (
    "stale_no_activity",
    "stale_in_stage",
    "stage_gate_missing_fields",
    "stage_gate_junk_values",
    "close_date_slipping",
    "close_date_past",
    "forecast_category_mismatch",
    "amount_invalid",
    "next_meeting_missing",
    "next_step_missing",
    "single_threaded",
    "parked_close_date",
    "stage_skipped",
    "stale_close_out",
)
"""The rule ids the simulator plants, in ``processor.rules.config.RULE_IDS`` spelling."""

JUNK_TEXT: Final = ("tbd", "TBD", "n/a", "N/A", "asdf", "xxx", ".", "tbc")

_PLAN_FIELDS: Final = frozenset(
    {f.AMOUNT, f.CLOSE_DATE, f.NEXT_STEP, f.NEXT_STEP_DATE, f.NEXT_MEETING_DATE}
)
"""Gate fields that other rules also read; omitting or junking one of them
would plant a second problem, so gate plants prefer the others."""

_CONSERVATIVE: Final = ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")
"""Forecast categories from the most to the least conservative."""

# Margins: how far a quantity must sit from its threshold for every sane
# engine to agree on which side it is.
_DAYS_MARGIN: Final = 1.5
_DATE_MARGIN: Final = 2
_AMOUNT_MARGIN: Final = 0.01


def allowed_categories(stage: Stage) -> frozenset[str]:
    """What a rep may forecast in a stage: the stage's own category and any
    more conservative one, unless the rules list them."""
    if stage.allowed_forecast_categories is not None:
        return frozenset(stage.allowed_forecast_categories)
    own = _CONSERVATIVE.index(stage.forecast_category)
    return frozenset(_CONSERVATIVE[: own + 1])


def required_from(pipeline: Pipeline, stage_name: str | None) -> int | None:
    return None if stage_name is None else pipeline.position_of(stage_name)


# ---- planting -----------------------------------------------------------------


def spec_for(
    kind: str, pipeline: Pipeline, rules: RuleSet, window: Window, rng: random.Random
) -> Spec | None:
    """The story knobs that plant ``kind`` in ``pipeline``, or None when the
    pipeline or the window cannot hold it (a 30-day window has no room for a
    deal silent for 60 days)."""
    if not pipeline.enabled(kind):
        return None
    opens = pipeline.open_positions
    t = pipeline.thresholds
    days = (window.as_of - window.start) / DAY
    if kind in ("stale_no_activity", "stale_close_out"):
        limit = t.close_out.no_activity_days
        candidates = [p for p in opens if stale_after(pipeline, p) is not None]
        if kind == "stale_close_out":
            candidates = list(opens)
        if not candidates:
            return None
        final = rng.choice(candidates)
        if kind == "stale_close_out":
            low, high = limit + 4.0, min(limit + 30.0, days - 2.0)
        else:
            n = stale_after(pipeline, final)
            assert n is not None
            low, high = n + 3.0, min(limit - 4.0, n + 25.0, days - 2.0)
        return Spec(final_positions=(final,), silence=(low, high)) if high > low else None
    if kind == "stale_in_stage":
        candidates = [p for p in opens if pipeline.stages[p].max_days_in_stage is not None]
        if not candidates:
            return None
        final = rng.choice(candidates)
        limit_days = pipeline.stages[final].max_days_in_stage
        assert limit_days is not None
        low, high = limit_days + 4.0, min(limit_days + 25.0, days - 1.0)
        return Spec(final_positions=(final,), final_dwell=(low, high)) if high > low else None
    if kind in ("stage_gate_missing_fields", "stage_gate_junk_values"):
        return _gate_spec(kind, pipeline, rules, rng)
    if kind == "close_date_slipping":
        return Spec(close="slipping")
    if kind == "close_date_past":
        return Spec(close="past")
    if kind == "parked_close_date":
        return Spec(close="parked")
    if kind == "forecast_category_mismatch":
        choices = [
            (p, c)
            for p in opens
            for c in ("Commit", "Closed")
            if c not in allowed_categories(pipeline.stages[p])
        ]
        if not choices:
            return None
        final, category = rng.choice(choices)
        return Spec(final_positions=(final,), forecast=category)
    if kind in ("amount_invalid", "next_meeting_missing", "next_step_missing"):
        start = required_from(pipeline, _REQUIRED_FROM[kind](pipeline))
        if start is None:
            return None
        finals = tuple(p for p in opens if p >= start)
        if not finals:
            return None
        if kind == "amount_invalid":
            amount = 0.0 if rng.random() < 0.5 else -float(rng.randint(10, 100) * 500)
            return Spec(final_positions=finals, amount=amount)
        if kind == "next_meeting_missing":
            return Spec(final_positions=finals, freeze_next_meeting=True)
        return Spec(final_positions=finals, freeze_next_step=True)
    if kind == "single_threaded":
        if t.single_threaded.min_contacts < 2:
            return None
        return Spec(amount_floor=t.single_threaded.min_amount, single_contact=True)
    if kind == "stage_skipped":
        finals = tuple(opens[2:])
        return Spec(final_positions=finals, skip=True) if finals else None
    raise ValueError(f"unknown pathology {kind!r}; known: {', '.join(PATHOLOGIES)}")


_REQUIRED_FROM: Final = {
    "amount_invalid": lambda p: p.thresholds.amount_required_from,
    "next_meeting_missing": lambda p: p.thresholds.next_meeting_required_from,
    "next_step_missing": lambda p: p.thresholds.next_step_required_from,
}


def _gate_spec(kind: str, pipeline: Pipeline, rules: RuleSet, rng: random.Random) -> Spec | None:
    """A required field left empty or filled with filler. Fields that other
    rules read (amount, dates, next step) are avoided when the stage has
    others, so that the plant raises the gate rule alone."""
    finals = [p for p in pipeline.open_positions if pipeline.required_by_position[p]]
    if not finals:
        return None
    final = rng.choice(finals)
    required = pipeline.required_by_position[final]
    text = [n for n in required if n not in _PLAN_FIELDS]
    if kind == "stage_gate_missing_fields":
        return Spec(final_positions=(final,), omit_field=rng.choice(text or list(required)))
    placeholder = f.CLOSE_DATE in required and rules.junk.placeholder_dates
    if placeholder and (not text or rng.random() < 0.3):
        return Spec(final_positions=(final,), close="placeholder")
    if not text:
        return None
    return Spec(
        final_positions=(final,), junk_field=rng.choice(text), junk_value=rng.choice(JUNK_TEXT)
    )


# ---- truth --------------------------------------------------------------------


@dataclass(slots=True)
class Folded:
    """What a story amounts to at a moment: the latest values and the bits of
    history the rules read."""

    values: dict[str, Any] = field(default_factory=dict)
    created: float | None = None
    deleted: bool = False
    position: int | None = None
    entered: float | None = None
    skips: int = 0
    last_move_skipped: bool = False
    pushes: int = 0
    pushed_days: int = 0
    last_activity: float | None = None
    contacts: set[str] = field(default_factory=set)


def fold(changes: Iterable[Change], pipeline: Pipeline, until: float = math.inf) -> Folded:
    state = Folded()
    rank = {p: i for i, p in enumerate(pipeline.open_positions)}
    for change in changes:
        if change.at > until:
            break
        if change.op == "delete":
            state.deleted = True
        elif change.op == "activity":
            state.last_activity = change.at
        else:
            if state.created is None:
                state.created = change.at
            _apply(state, change, pipeline, rank)
        state.contacts.update(change.contact_ids)
    return state


def _apply(state: Folded, change: Change, pipeline: Pipeline, rank: dict[int, int]) -> None:
    values = change.fields
    if f.STAGE in values:
        position = pipeline.position_of(values[f.STAGE])
        if position != state.position:
            previous = state.position
            if previous is not None and position is not None:
                skipped = (
                    position in rank and previous in rank and rank[position] > rank[previous] + 1
                )
                state.skips += skipped
                state.last_move_skipped = skipped
            state.position = position
            state.entered = change.at
    new_close = values.get(f.CLOSE_DATE)
    old_close = state.values.get(f.CLOSE_DATE)
    if isinstance(new_close, str) and isinstance(old_close, str) and new_close > old_close:
        state.pushes += 1
        state.pushed_days += ordinal_of(new_close) - ordinal_of(old_close)
    state.values.update(values)


@dataclass(frozen=True, slots=True)
class Verdict:
    rules: frozenset[str]
    doubts: tuple[str, ...] = ()
    """Quantities too close to a threshold for engines to agree on."""


_NOTHING: Final = Verdict(frozenset())


class Oracle:
    """Evaluates every rule the simulator plants, the way the rules file
    describes it, on a folded story (interpretations: see the module README in
    ``processor/simulate/__init__.py``)."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._junk = rules.junk_detector

    def is_junk(self, name: str, value: Any) -> bool:
        """Filler in a required field: junk text, or a placeholder date (the
        rules file's own definition). Numbers are never junk: a zero amount is
        ``amount_invalid``."""
        return self._junk.is_junk(name, value)

    def verdict(self, changes: Sequence[Change], pipeline: Pipeline, as_of: float) -> Verdict:
        return self.judge(fold(changes, pipeline, as_of), pipeline, as_of)

    def judge(self, state: Folded, pipeline: Pipeline, as_of: float) -> Verdict:
        position = state.position
        if state.deleted or position is None or pipeline.stages[position].closed:
            return _NOTHING
        check = _Check()
        self._gates(state, pipeline, position, check)
        self._staleness(state, pipeline, position, as_of, check)
        self._dates(state, pipeline, position, day_of(as_of), check)
        self._forecast(state, pipeline, position, check)
        self._threading(state, pipeline, position, check)
        if state.skips:
            check.found.add("stage_skipped")
            if not state.last_move_skipped:
                check.doubts.append("a skip that is not the latest move")
        found = frozenset(r for r in check.found if pipeline.enabled(r))
        return Verdict(found, tuple(check.doubts))

    def _gates(self, state: Folded, pipeline: Pipeline, position: int, check: _Check) -> None:
        """One problem, one alert: a required field that a dedicated rule
        watches from this stage on (amount, next step, next meeting) counts
        for that rule, not for the gate."""
        values = state.values
        required = pipeline.required_by_position[position]
        missing = [n for n in required if _blank(values.get(n))]
        if any(n not in _own_rule_fields(pipeline, position) for n in missing):
            check.found.add("stage_gate_missing_fields")
        if any(self.is_junk(n, values[n]) for n in required if n not in missing):
            check.found.add("stage_gate_junk_values")

    def _staleness(
        self, state: Folded, pipeline: Pipeline, position: int, as_of: float, check: _Check
    ) -> None:
        t = pipeline.thresholds
        touched = state.last_activity if state.last_activity is not None else state.created
        if touched is not None:
            idle = (as_of - touched) / DAY
            close_out = t.close_out.no_activity_days
            check.above(idle, close_out, _DAYS_MARGIN, "stale_close_out")
            limit = stale_after(pipeline, position)
            if limit is not None and "stale_close_out" not in check.found:
                # The close-out recommendation supersedes the plain alert.
                check.above(idle, limit, _DAYS_MARGIN, "stale_no_activity")
        max_days = pipeline.stages[position].max_days_in_stage
        if max_days is not None and state.entered is not None:
            in_stage = (as_of - state.entered) / DAY
            check.above(in_stage, max_days, _DAYS_MARGIN, "stale_in_stage")

    def _dates(
        self, state: Folded, pipeline: Pipeline, position: int, today: int, check: _Check
    ) -> None:
        t = pipeline.thresholds
        values = state.values
        close = values.get(f.CLOSE_DATE)
        if isinstance(close, str) and not self.is_junk(f.CLOSE_DATE, close):
            # A placeholder date is junk, not a date in the past or parked.
            ahead = ordinal_of(close) - today
            check.above(-ahead, 0, _DATE_MARGIN, "close_date_past")
            check.above(ahead, t.parked_close_date_days, _DATE_MARGIN, "parked_close_date")
        slip = t.close_date_slip
        if state.pushes > slip.max_pushes:
            check.found.add("close_date_slipping")
        check.above(state.pushed_days, slip.max_days, _DATE_MARGIN, "close_date_slipping")
        meeting_from = required_from(pipeline, t.next_meeting_required_from)
        if meeting_from is not None and position >= meeting_from:
            self._lapsed(values.get(f.NEXT_MEETING_DATE), today, "next_meeting_missing", check)
        step_from = required_from(pipeline, t.next_step_required_from)
        if step_from is not None and position >= step_from:
            if _blank(values.get(f.NEXT_STEP)):
                check.found.add("next_step_missing")
            step_date = values.get(f.NEXT_STEP_DATE)
            if isinstance(step_date, str):
                self._lapsed(step_date, today, "next_step_missing", check)
        amount_from = required_from(pipeline, t.amount_required_from)
        amount = values.get(f.AMOUNT)
        if amount_from is not None and position >= amount_from and (amount is None or amount <= 0):
            check.found.add("amount_invalid")

    @staticmethod
    def _lapsed(value: Any, today: int, rule: str, check: _Check) -> None:
        """No date, or one that is not in the future."""
        if not isinstance(value, str):
            check.found.add(rule)
            return
        check.above(today, ordinal_of(value), _DATE_MARGIN, rule, strict=False)

    def _forecast(self, state: Folded, pipeline: Pipeline, position: int, check: _Check) -> None:
        raw = state.values.get(f.FORECAST_CATEGORY)
        category = self.rules.standard_category(raw) if isinstance(raw, str) else None
        if category is None:
            check.doubts.append(f"forecast category {raw!r} is not a known spelling")
        elif category not in allowed_categories(pipeline.stages[position]):
            check.found.add("forecast_category_mismatch")

    def _threading(self, state: Folded, pipeline: Pipeline, position: int, check: _Check) -> None:
        rule = pipeline.thresholds.single_threaded
        amount = state.values.get(f.AMOUNT)
        if not isinstance(amount, float | int):
            return
        count = state.values.get(f.CONTACT_COUNT)
        engaged = max(len(state.contacts), count if isinstance(count, int) else 0)
        if len(state.contacts) != engaged:
            check.doubts.append("contact count and engaged contacts disagree")
        margin = rule.min_amount * _AMOUNT_MARGIN
        if abs(amount - rule.min_amount) < margin and engaged < rule.min_contacts:
            check.doubts.append("amount at the single-threaded threshold")
        if amount >= rule.min_amount and engaged < rule.min_contacts:
            check.found.add("single_threaded")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _own_rule_fields(pipeline: Pipeline, position: int) -> frozenset[str]:
    t = pipeline.thresholds
    owned = (
        (f.AMOUNT, t.amount_required_from, "amount_invalid"),
        (f.NEXT_STEP, t.next_step_required_from, "next_step_missing"),
        (f.NEXT_MEETING_DATE, t.next_meeting_required_from, "next_meeting_missing"),
    )
    return frozenset(
        name
        for name, stage, rule in owned
        if pipeline.enabled(rule)
        and (start := required_from(pipeline, stage)) is not None
        and position >= start
    )


@dataclass(slots=True)
class _Check:
    found: set[str] = field(default_factory=set)
    doubts: list[str] = field(default_factory=list)

    def above(
        self, value: float, limit: float, margin: float, rule: str, *, strict: bool = True
    ) -> None:
        """Fires ``rule`` when ``value`` exceeds ``limit`` (or reaches it, when
        not strict), and doubts any value within ``margin`` of it."""
        if abs(value - limit) < margin:
            self.doubts.append(f"{rule}: {value:.2f} against {limit}")
        if value > limit or (not strict and value >= limit):
            self.found.add(rule)


__all__ = [
    "JUNK_TEXT",
    "PATHOLOGIES",
    "Folded",
    "Oracle",
    "Verdict",
    "allowed_categories",
    "fold",
    "spec_for",
]
