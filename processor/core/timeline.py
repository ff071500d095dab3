"""The observation timeline and the stage history derived from it.

Stage history is not appended as events arrive; it is derived from the
timeline, ordered by event time. That makes it the same whatever order or
however often events are delivered: a late event lands in its place, and the
records that changed are published again under their deterministic ids.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from processor.core import fields as f
from processor.core.clock import days_between, stamp_ms
from processor.rules.config import RuleSet
from schemas.state import Observation, OpportunityState

TIMELINE_CAP = 32
"""Observations kept before the oldest are folded into ``state.base``. Events
older than the fold can still update fields (last writer wins) but can no
longer reorder the stage history before them."""

_NAMESPACE = uuid.UUID("5b7d7f0e-4c1a-4d7e-9f57-3b1f0b2f6a10")

# Reserved keys in state.base for the walk's running context.
_ENTERED = "_entered"
_PUSHES = "_pushes"
_FIRST_CLOSE = "_first_close"
_STARTED = "_started"
_CATEGORY = "_category"
_CONTEXT_KEYS = (_ENTERED, _PUSHES, _FIRST_CLOSE, _STARTED, _CATEGORY)


@dataclass(slots=True)
class Transition:
    """A stage transition as derived; turned into a published record only
    when it is new or differs from what was published before."""

    kind: str
    event_id: str
    stamp: int
    at_ms: int
    previous_stage: str | None
    new_stage: str | None
    previous_entered_ms: int | None
    amount: float | None
    currency: str | None
    close_date: str | None
    forecast_category: str | None
    owner_id: str | None
    pipeline: str
    is_closed: bool
    is_won: bool
    pushes: int


@dataclass(slots=True)
class Summary:
    stage_entered_ms: int | None = None
    close_pushes: int = 0
    close_slip_days: int = 0


def record_id(opportunity_id: str, event_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{opportunity_id}\x1f{event_id}"))


_NAMING_FIELDS = (f.STAGE, f.DELETED, f.FORECAST_CATEGORY, f.PIPELINE)


def observation_id(event_id: str, values: dict[str, Any]) -> str:
    """Only observations that can start a transition (a stage, pipeline,
    deletion or forecast-category change) need their event id (it names the record); the
    rest keep an empty id, since event ids (Salesforce's run to ~60
    characters) would otherwise dominate the state's size."""
    return event_id if any(name in values for name in _NAMING_FIELDS) else ""


def insert(state: OpportunityState, stamp: int, event_id: str, values: dict[str, Any]) -> int:
    """Puts an observation in event-time order and answers where (-1 for a
    duplicate or for one older than what has been folded away)."""
    if state.base_stamp and stamp <= state.base_stamp:
        return -1
    timeline = state.timeline
    if not timeline or (timeline[-1][0], timeline[-1][1]) < (stamp, event_id):
        timeline.append((stamp, event_id, values))  # in order: the usual case
        return len(timeline) - 1
    position = bisect_left(timeline, (stamp, event_id), key=lambda o: (o[0], o[1]))
    if position < len(timeline):
        existing = timeline[position]
        if existing[0] == stamp and existing[1] == event_id and (event_id or existing[2] == values):
            return -1
    timeline.insert(position, (stamp, event_id, values))
    return position


@dataclass(slots=True)
class _Walk:
    """The running context of a walk over observations."""

    rules: RuleSet
    opportunity_id: str
    values: dict[str, Any]
    entered: int | None = None
    pushes: int = 0
    first_close: str | None = None
    started: bool = False
    stage: str | None = None
    deleted: bool = False
    category: str | None = None
    stamp: int = 0
    transitions: list[Transition] = field(default_factory=list)

    @classmethod
    def from_base(cls, state: OpportunityState, rules: RuleSet) -> _Walk:
        base = state.base
        values = {k: v for k, v in base.items() if k not in _CONTEXT_KEYS}
        walk = cls(
            rules=rules,
            opportunity_id=state.opportunity_id,
            values=values,
            entered=base.get(_ENTERED),
            pushes=base.get(_PUSHES, 0),
            first_close=base.get(_FIRST_CLOSE),
            started=base.get(_STARTED, False),
        )
        walk.stage = walk._canonical_stage()
        walk.deleted = bool(values.get(f.DELETED, False))
        # States folded before categories were tracked have no _category.
        walk.category = base[_CATEGORY] if _CATEGORY in base else (
            walk._category() if walk.started else None)
        return walk

    def to_base(self) -> dict[str, Any]:
        base = dict(self.values)
        base.update({_ENTERED: self.entered, _PUSHES: self.pushes,
                     _FIRST_CLOSE: self.first_close, _STARTED: self.started,
                     _CATEGORY: self.category})
        return base

    def _canonical_stage(self) -> str | None:
        pipeline = self.rules.pipeline_for(self.values.get(f.PIPELINE))
        return pipeline.canonical_stage(self.values.get(f.STAGE))

    def _category(self) -> str | None:
        """The standard forecast category now. A closed stage decides it (a won
        deal is Closed whatever the rep last picked); in open stages the rep's
        explicit category stands, and the stage's mapping fills in for none."""
        values = self.values
        pipeline = self.rules.pipeline_for(values.get(f.PIPELINE))
        position = pipeline.stage_position(values.get(f.STAGE))
        stage = pipeline.stages[position] if position is not None else None
        category = None if stage is not None and stage.closed else (
            self.rules.standard_category(values.get(f.FORECAST_CATEGORY)))
        if category is None and stage is not None:
            category = stage.forecast_category
        return category

    def step(self, observation: Observation) -> None:
        stamp, event_id, changed = observation
        self.stamp = stamp
        new_close = changed.get(f.CLOSE_DATE)
        if new_close is not None:
            old_close = self.values.get(f.CLOSE_DATE)
            if old_close is not None and new_close > old_close:
                self.pushes += 1
            if self.first_close is None:
                self.first_close = new_close
        self.values.update(changed)
        stage = self._canonical_stage()
        deleted = bool(self.values.get(f.DELETED, False))
        at = stamp_ms(stamp)
        if not self.started:
            if stage is not None and not deleted:
                self._emit("created", event_id, at, None, stage, None)
                self.entered = at
                self.started = True
        elif deleted != self.deleted:
            if deleted:
                self._emit("deleted", event_id, at, self.stage, None, self.entered)
            else:
                self._emit("restored", event_id, at, None, stage, None)
                self.entered = at
        elif not deleted and stage != self.stage:
            self._emit("stage_changed", event_id, at, self.stage, stage, self.entered)
            self.entered = at
        elif not deleted and self._category() != self.category:
            # Same stage, another forecast category: the rep's call moved, and
            # forecasting needs when, so it is history too.
            self._emit("category_changed", event_id, at, stage, stage, self.entered)
        self.stage, self.deleted = stage, deleted
        if self.started and not deleted:
            self.category = self._category()

    def _emit(
        self,
        kind: str,
        event_id: str,
        at: int,
        previous: str | None,
        new: str | None,
        previous_entered: int | None,
    ) -> None:
        values = self.values
        pipeline = self.rules.pipeline_for(values.get(f.PIPELINE))
        position = pipeline.stage_position(values.get(f.STAGE))
        stage = pipeline.stages[position] if position is not None else None
        category = self._category()
        self.transitions.append(
            Transition(
                kind=kind,
                event_id=event_id,
                stamp=self.stamp,
                at_ms=at,
                previous_stage=previous,
                new_stage=new,
                previous_entered_ms=previous_entered,
                amount=values.get(f.AMOUNT),
                currency=values.get(f.CURRENCY),
                close_date=values.get(f.CLOSE_DATE),
                forecast_category=category,
                owner_id=values.get(f.OWNER_ID),
                pipeline=pipeline.id,
                is_closed=bool(stage and stage.closed),
                is_won=bool(stage and stage.won),
                pushes=self.pushes,
            )
        )

    def summary(self) -> Summary:
        current_close = self.values.get(f.CLOSE_DATE)
        slip = 0
        if self.first_close and current_close:
            slip = max(0, days_between(self.first_close, current_close))
        return Summary(self.entered, self.pushes, slip)


def derive(state: OpportunityState, rules: RuleSet) -> tuple[list[Transition], Summary]:
    walk = _Walk.from_base(state, rules)
    for observation in state.timeline:
        walk.step(observation)
    state.memo.walk = walk
    return walk.transitions, walk.summary()


def extend(state: OpportunityState, rules: RuleSet) -> tuple[list[Transition], Summary] | None:
    """Steps the cached walk over the observation just appended at the end of
    the timeline, instead of walking the whole timeline again: in-order
    delivery, the usual case, then costs one step, not up to TIMELINE_CAP.
    None when no walk is cached (the caller derives)."""
    walk: _Walk | None = state.memo.walk
    if walk is None or walk.rules is not rules:
        return None
    walk.step(state.timeline[-1])
    return walk.transitions, walk.summary()


def published(state: OpportunityState, rules: RuleSet) -> list[Transition]:
    """The transitions as last derived: kept beside the state in memory (not
    serialized) so a change derives the history once, not twice."""
    walk: _Walk | None = state.memo.walk
    if walk is None or walk.rules is not rules:
        transitions, _ = derive(state, rules)
        return transitions
    return walk.transitions


def compact(state: OpportunityState, rules: RuleSet, cap: int = TIMELINE_CAP) -> None:
    """Folds the oldest observations into the base so state stays small."""
    excess = len(state.timeline) - cap
    if excess <= 0:
        return
    walk = _Walk.from_base(state, rules)
    for observation in state.timeline[:excess]:
        walk.step(observation)
    state.base = walk.to_base()
    state.base_stamp = base_stamp = state.timeline[excess - 1][0]
    del state.timeline[:excess]
    # The walk's end is the same from the new base; only the transitions of the
    # folded observations are no longer derivable, so they leave the cache.
    cached: _Walk | None = state.memo.walk
    if cached is not None:
        cached.transitions = [t for t in cached.transitions if t.stamp > base_stamp]
