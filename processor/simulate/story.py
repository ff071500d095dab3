"""The canonical story of one opportunity, before any vendor spells it.

A story is a list of ``Change`` records in canonical field names, so that the
truth about an opportunity can be derived once (``pathologies.Oracle``)
and every vendor format is only a rendering of the same facts.

Stage dwell times are scheduled backwards from the end of the window (or from
the close): that is the only way to control exactly how long an open deal has
sat in its current stage at ``as_of``, which is what decides ``stale_in_stage``.
Clean deals are built to satisfy every rule at every moment, not only at
``as_of``, so that a correct engine never raises (and resolves) a spurious alert
on them along the way.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, TypeVar

from processor.core import fields as f
from processor.rules.config import Pipeline, RuleSet

DAY: Final = 86_400.0
"""Story times are epoch seconds (floats): cheap to draw and compare."""

BIG_DEAL: Final = 50_000.0
"""Deals from this amount are always multi-threaded in clean stories, in any
currency, so that no reading of the single-threaded threshold (raw amount or
converted) can flag a clean deal."""

ActivityKind = Literal["call", "email", "meeting"]
Op = Literal["create", "update", "activity", "delete"]
CloseMode = Literal["clean", "past", "parked", "placeholder", "slipping"]
Outcome = Literal["open", "won", "lost", "deleted"]


class Infeasible(Exception):
    """The draw cannot satisfy the spec (the window is too short for it, or a
    date would land in the past): the caller draws again."""


_NO_FIELDS: Final[Mapping[str, Any]] = MappingProxyType({})


class Change(NamedTuple):
    """One canonical change. ``fields`` holds dates as ISO strings and amounts
    as floats, as the processor's canonical fields do. A named tuple because
    a story makes dozens of them and a frozen dataclass costs four times more."""

    at: float
    op: Op
    fields: Mapping[str, Any] = _NO_FIELDS
    contact_ids: tuple[str, ...] = ()
    kind: ActivityKind | None = None
    subject: str | None = None
    new_contacts: tuple[str, ...] = ()
    """Contacts of a creation or an activity not engaged before (HubSpot
    associates them; the others carry them on the activity itself)."""


@dataclass(frozen=True, slots=True)
class Cast:
    """Who and what a deal involves, already in the ids of its vendor."""

    opportunity_id: str
    owner_id: str
    manager_id: str
    account_id: str
    account_name: str
    contact_ids: tuple[str, ...]


VendorFormat = Literal["salesforce", "hubspot", "generic"]


@dataclass(frozen=True, slots=True)
class DealStory:
    """A finished story with what renderers and the truth need to know."""

    index: int
    fmt: VendorFormat
    opportunity_id: str
    owner_id: str
    pipeline: Pipeline
    changes: list[Change]
    truth: frozenset[str]
    planted: str | None
    flavor: int
    """Random bits for per-deal rendering choices (an org's stage labels)."""


@dataclass(frozen=True, slots=True)
class Spec:
    """What a story must contain. The defaults describe a clean deal; each
    pathology changes a few knobs (see ``pathologies.spec_for``)."""

    outcome: Outcome = "open"
    final_positions: tuple[int, ...] | None = None
    final_dwell: tuple[float, float] | None = None
    """Days in the final stage at as_of."""
    skip: bool = False
    """Jump from the first stage straight into the final one."""
    silence: tuple[float, float] | None = None
    """Days without any activity (or edit) before as_of."""
    omit_field: str | None = None
    junk_field: str | None = None
    junk_value: str | None = None
    forecast: str | None = None
    """A forecast category set by hand in the final stage."""
    amount: float | None = None
    amount_floor: float | None = None
    single_contact: bool = False
    close: CloseMode = "clean"
    freeze_next_meeting: bool = False
    freeze_next_step: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    as_of: float

    @property
    def today(self) -> int:
        """The as_of date as an ordinal: the day date rules compare against."""
        return day_of(self.as_of)


EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def day_of(moment: float) -> int:
    """The UTC date of an epoch-seconds moment, as an ordinal."""
    return EPOCH_ORDINAL + int(moment // DAY)


@lru_cache(maxsize=8192)
def iso_day(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


@lru_cache(maxsize=8192)
def ordinal_of(iso: str) -> int:
    return date.fromisoformat(iso).toordinal()


_T = TypeVar("_T")


def pick(rng: random.Random, options: Sequence[_T]) -> _T:
    """``rng.choice`` at a third of the cost (it is called for every touch)."""
    return options[int(rng.random() * len(options))]


def between(rng: random.Random, low: int, high: int) -> int:
    """``rng.randint`` (both ends included) at a third of the cost."""
    return low + int(rng.random() * (high - low + 1))


# ---- realistic text ---------------------------------------------------------

_FIRST: Final = ("Dana", "Priya", "Marcus", "Elena", "Tom", "Aisha", "Jonas", "Mei", "Carlos",
                 "Sofia", "Raj", "Hannah", "Luca", "Grace", "Omar", "Ingrid", "Kenji", "Nora")
_LAST: Final = ("Whitfield", "Raman", "Okafor", "Lindqvist", "Brennan", "Haddad", "Novak",
                "Tanaka", "Moreau", "Schulz", "Castillo", "Patel", "Fischer", "Osei")
_CHAMPION_TITLES: Final = ("VP Finance Ops", "Director of RevOps", "Head of Sales Ops",
                           "IT Director", "Senior Manager, FP&A", "VP Customer Success")
_BUYER_TITLES: Final = ("CFO", "CRO", "COO", "CIO", "VP Finance", "SVP Sales")
_TEXT: Final[dict[str, tuple[str, ...]]] = {
    "metrics": ("Cut month-end close from 9 to 4 days", "Reduce logo churn 15% by Q4",
                "Save 2 FTE in accounts payable", "Lift win rate from 18% to 25%",
                "Consolidate 3 BI tools, save $120k a year", "Halve onboarding time for reps",
                "Reduce DSO by 12 days", "Raise net revenue retention to 115%"),
    "identify_pain": ("Manual reconciliation across 3 ERPs", "Forecast calls run on spreadsheets",
                      "No pipeline visibility by region", "Audit findings on access reviews",
                      "Renewals slip because usage data is siloed",
                      "Support backlog doubled since Q2", "Quota planning takes six weeks"),
    "decision_criteria": ("SOC 2 Type II, SSO and a Snowflake connector",
                          "Native Salesforce integration, EU data residency",
                          "Time to value under 60 days", "Cheaper than current tooling",
                          "API coverage for the data team", "Role-based access and audit log"),
    "decision_process": ("Security review, then CFO sign-off",
                         "Pilot with 2 teams, steering committee vote",
                         "Procurement RFP closes end of quarter",
                         "IT architecture review, then budget approval",
                         "VP Sales recommends, CRO signs"),
    "paper_process": ("MSA redlines with legal, PO via Coupa",
                      "Order form on our paper, 30-day legal review",
                      "DPA review by privacy team, then PO",
                      "DocuSign after procurement approval"),
    "competition": ("Incumbent spreadsheets and a Clari trial", "Gong evaluated in parallel",
                    "Internal build by the data team", "Status quo: no decision",
                    "Salesforce native forecasting"),
}
_GENERIC_TEXT: Final = ("Confirmed on the last call", "Documented in the mutual action plan",
                        "Agreed with the champion", "Written up in the discovery notes")
_NEXT_STEPS: Final = ("Send mutual action plan", "Security questionnaire review",
                      "Pricing call with the CFO", "Technical deep dive with IT",
                      "Share ROI model", "Schedule exec sponsor call", "Send redlined order form",
                      "Confirm pilot success criteria", "Demo for the finance team",
                      "Align on implementation timeline", "Intro to procurement")
_KINDS: Final[tuple[ActivityKind, ...]] = ("call", "email", "meeting")
_SUBJECTS: Final[dict[str, tuple[str, ...]]] = {
    "call": ("Discovery call", "Follow-up call", "Pricing discussion", "Check-in call",
             "Call with champion"),
    "email": ("Sent recap and next steps", "Shared ROI model", "Sent security docs",
              "Follow-up: proposal questions", "Sent order form"),
    "meeting": ("Demo with IT", "Exec alignment meeting", "Onsite workshop",
                "Technical deep dive", "Proposal walkthrough"),
}
_ACCOUNT_A: Final = ("Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Acme",
                     "Hooli", "Vandelay", "Soylent", "Tyrell", "Cyberdyne", "Wonka", "Oscorp",
                     "Pied Piper", "Aperture", "Massive", "Blue Sun", "Gringotts", "Monarch")
_ACCOUNT_B: Final = ("Logistics", "Analytics", "Health", "Foods", "Robotics", "Capital",
                     "Energy", "Media", "Labs", "Systems", "Retail", "Insurance", "Software")
_PRODUCTS: Final = ("Platform", "Analytics add-on", "Enterprise upgrade", "EMEA expansion",
                    "Pilot", "Annual subscription", "Forecasting module", "Seat expansion")


def account_name(n: int) -> str:
    a, b = divmod(n, len(_ACCOUNT_B))
    name = f"{_ACCOUNT_A[a % len(_ACCOUNT_A)]} {_ACCOUNT_B[b]}"
    return name if a < len(_ACCOUNT_A) else f"{name} {a // len(_ACCOUNT_A) + 1}"


def _person(rng: random.Random, titles: Sequence[str]) -> str:
    return f"{pick(rng, _FIRST)} {pick(rng, _LAST)}, {pick(rng, titles)}"


def field_text(name: str, rng: random.Random) -> str:
    """Short, real-looking content for a required field; none of it is filler
    under the default junk policy (``tests/simulate`` checks that)."""
    if name == "champion":
        return _person(rng, _CHAMPION_TITLES)
    if name == "economic_buyer":
        return _person(rng, _BUYER_TITLES)
    return pick(rng, _TEXT.get(name, _GENERIC_TEXT))


# ---- scheduling -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Schedule:
    path: tuple[tuple[int, float], ...]
    """(stage position, entered at); the first entry is the creation."""
    ended: float | None
    """When the deal was closed or deleted (the last path entry for a close)."""
    last_activity: float


def stale_after(pipeline: Pipeline, position: int) -> float | None:
    days = pipeline.stages[position].stale_after_days
    return float(days) if days is not None else _opt(pipeline.thresholds.default_stale_after_days)


def _opt(value: int | None) -> float | None:
    return None if value is None else float(value)


def _stage_cap(pipeline: Pipeline, position: int) -> float:
    """The longest a clean deal may sit in a stage (days)."""
    limit = pipeline.stages[position].max_days_in_stage
    return (limit if limit is not None else 45) - 2.5


_OPEN_WEIGHT_DECAY: Final = 0.8
"""Later stages hold fewer deals: position n gets weight 0.8**n."""


def _pick_open(pipeline: Pipeline, rng: random.Random, allowed: Sequence[int] | None) -> int:
    choices = list(allowed) if allowed else pipeline.open_positions
    weights = [_OPEN_WEIGHT_DECAY ** pipeline.open_positions.index(p) for p in choices]
    return rng.choices(choices, weights)[0]


def _dwell(pipeline: Pipeline, position: int, rng: random.Random) -> float:
    cap = _stage_cap(pipeline, position)
    return rng.triangular(1.0, cap, min(cap, 8.0)) * DAY


def _schedule(pipeline: Pipeline, window: Window, spec: Spec, rng: random.Random) -> _Schedule:
    """Stage entry times and the close or delete time, drawn backwards from
    the end so that the time in the final stage is exactly what was asked."""
    opens = pipeline.open_positions
    silence = rng.uniform(*spec.silence) * DAY if spec.silence else None
    if spec.outcome in ("won", "lost"):
        return _schedule_closed(pipeline, window, spec, rng)
    final = _pick_open(pipeline, rng, spec.final_positions)
    positions = [opens[0], final] if spec.skip else [p for p in opens if p <= final]
    if spec.skip and final == opens[0]:
        raise Infeasible("a skip needs a final stage after the first")
    if spec.final_dwell:
        dwell_final = rng.uniform(*spec.final_dwell) * DAY
    else:
        dwell_final = rng.uniform(0.3, _stage_cap(pipeline, final)) * DAY
    if silence is not None:
        dwell_final = max(dwell_final, silence + rng.uniform(0.5, 6.0) * DAY)
    earlier = [_dwell(pipeline, p, rng) for p in positions[:-1]]
    span = window.as_of - window.start - 0.1 * DAY
    if dwell_final >= span:
        if spec.final_dwell or silence is not None:
            raise Infeasible("the window is shorter than the planted dwell")
        dwell_final = span * rng.uniform(0.2, 0.9)
    room = span - dwell_final
    if sum(earlier) > room:
        scale = room / sum(earlier) * rng.uniform(0.6, 0.98)
        earlier = [d * scale for d in earlier]
    entered = window.as_of - dwell_final
    times = [entered]
    for d in reversed(earlier):
        times.append(times[-1] - d)
    times.reverse()
    path = tuple(zip(positions, times, strict=True))
    if silence is not None:
        last = window.as_of - silence
    else:
        last = window.as_of - rng.uniform(0.05, 2.5) * DAY
        if last <= times[0]:
            last = times[0] + (window.as_of - times[0]) * rng.uniform(0.3, 0.9)
    ended = None
    if spec.outcome == "deleted":
        ended = rng.uniform(times[0] + 0.1 * (window.as_of - times[0]), window.as_of - 0.3 * DAY)
        if ended <= times[0]:
            raise Infeasible("no room to delete after creation")
        last = min(last, ended - 0.01 * DAY)
    return _Schedule(path, ended, max(last, times[0] + 0.001 * DAY))


def _schedule_closed(
    pipeline: Pipeline, window: Window, spec: Spec, rng: random.Random
) -> _Schedule:
    opens = pipeline.open_positions
    won = [i for i, s in enumerate(pipeline.stages) if s.won]
    lost = [i for i, s in enumerate(pipeline.stages) if s.closed and not s.won]
    if spec.outcome == "won" and won:
        last_open, closed = opens[-1], won[0]
    else:
        last_open, closed = _pick_open(pipeline, rng, None), lost[0]
    positions = [p for p in opens if p <= last_open]
    dwells = [_dwell(pipeline, p, rng) for p in positions]
    span = window.as_of - window.start - 0.6 * DAY
    if sum(dwells) > span:
        scale = span / sum(dwells) * rng.uniform(0.5, 0.95)
        dwells = [d * scale for d in dwells]
    closed_at = rng.uniform(window.start + 0.05 * DAY + sum(dwells), window.as_of - 0.5 * DAY)
    times = [closed_at]
    for d in reversed(dwells):
        times.append(times[-1] - d)
    times.reverse()
    path = tuple(zip([*positions, closed], times, strict=True))
    last = closed_at - rng.uniform(0.02, 1.0) * DAY
    return _Schedule(path, closed_at, max(last, times[0] + 0.001 * DAY))


_MAX_GAP: Final = 10.6
"""Days; no gap between two touches is longer than this less the margin."""


def _activity_times(pipeline: Pipeline, schedule: _Schedule, rng: random.Random) -> list[float]:
    """Backwards from the last activity, with every gap shorter than the
    staleness limit of any stage the gap spans, so that a clean deal is never
    stale, not even for a day."""
    path = schedule.path
    created = path[0][1]
    ends = [entered for _, entered in path[1:]] + [math.inf]
    spans = [
        (entered, left, limit)
        for (p, entered), left in zip(path, ends, strict=True)
        if not pipeline.stages[p].closed and (limit := stale_after(pipeline, p)) is not None
    ]
    times: list[float] = []
    moment = schedule.last_activity
    while moment > created + 0.3 * DAY:
        times.append(moment)
        reach = moment - _MAX_GAP * DAY
        cap = min(
            (limit for entered, left, limit in spans if entered <= moment and left > reach),
            default=_MAX_GAP,
        )
        moment -= rng.uniform(0.4, max(0.5, min(cap, _MAX_GAP) - 1.6)) * DAY
    times.append(created + rng.uniform(0.01, 0.25) * DAY)
    times.reverse()
    return times


# ---- the story --------------------------------------------------------------


def tell(
    rules: RuleSet,
    pipeline: Pipeline,
    window: Window,
    spec: Spec,
    cast: Cast,
    rng: random.Random,
) -> list[Change]:
    """The whole life of one opportunity inside the window, in event-time
    order. Raises ``Infeasible`` when the draw cannot satisfy ``spec``."""
    schedule = _schedule(pipeline, window, spec, rng)
    teller = _Teller(rules, pipeline, window, spec, cast, schedule, rng)
    return teller.tell()


_OP_ORDER: Final = {"create": 0, "update": 1, "activity": 2, "delete": 3}

_SET_BY_PLAN: Final = frozenset(
    {f.AMOUNT, f.CLOSE_DATE, f.NEXT_STEP, f.NEXT_STEP_DATE, f.NEXT_MEETING_DATE, f.CURRENCY,
     f.OWNER_ID, f.MANAGER_ID, f.STAGE, f.PIPELINE, f.FORECAST_CATEGORY, f.PROBABILITY,
     f.NAME, f.CONTACT_COUNT, f.LAST_ACTIVITY_DATE}
)
"""Fields the story sets from its own plan, never as free gate text."""


class _Teller:
    """Walks one deal's moments (stage moves and touches) in time order, so
    that every decision reads the values the deal holds at that moment."""

    def __init__(
        self,
        rules: RuleSet,
        pipeline: Pipeline,
        window: Window,
        spec: Spec,
        cast: Cast,
        schedule: _Schedule,
        rng: random.Random,
    ) -> None:
        self.pipeline = pipeline
        self.window = window
        self.spec = spec
        self.cast = cast
        self.schedule = schedule
        self.rng = rng
        self.acts = _activity_times(pipeline, schedule, rng)
        self.amount, self.currency = _amount(pipeline, spec, rng)
        self.big = self.amount >= BIG_DEAL
        if spec.single_contact:
            engaged = 1
        else:
            engaged = between(rng, 2, 4) if self.big else between(rng, 1, 3)
        self.engaged = min(engaged, len(cast.contact_ids))
        self.closes = _close_plan(rules, pipeline, window, spec, schedule, rng)
        created = schedule.path[0][1]
        self.freeze_nm = _freeze_time(spec.freeze_next_meeting, window, created, rng)
        self.freeze_ns = _freeze_time(spec.freeze_next_step, window, created, rng)
        self.last_nm = max((t for t in self.acts if t < self.freeze_nm), default=None)
        self.last_ns = max((t for t in self.acts if t < self.freeze_ns), default=None)
        self.end = schedule.ended if schedule.ended is not None else window.as_of
        self.changes: list[Change] = []
        self.values: dict[str, Any] = {}
        self.seen: list[str] = []

    def tell(self) -> list[Change]:
        self._create()
        moments = [(entered, 0, i) for i, (_, entered) in enumerate(self.schedule.path) if i]
        moments += [(moment, 1, i) for i, moment in enumerate(self.acts)]
        moments.sort()
        for n, (_, what, i) in enumerate(moments):
            if what == 0:
                self._move(i)
            else:
                following = moments[n + 1][0] if n + 1 < len(moments) else self.end
                self._touch(i, following)
        for moment, new_close in self.closes.pushes:
            self._emit(Change(moment, "update", {f.CLOSE_DATE: iso_day(new_close)}))
        if self.spec.forecast is not None:
            self._override_forecast(self.spec.forecast)
        if self.spec.outcome == "deleted":
            assert self.schedule.ended is not None
            ended = self.schedule.ended
            self.changes = [c for c in self.changes if c.at < ended]
            self.changes.append(Change(ended, "delete"))
        self.changes.sort(key=lambda c: (c.at, _OP_ORDER[c.op]))
        return self.changes

    def _emit(self, change: Change) -> None:
        self.changes.append(change)
        self.values.update(change.fields)

    def _text(self, name: str) -> str:
        if name == self.spec.junk_field and self.spec.junk_value is not None:
            return self.spec.junk_value
        return field_text(name, self.rng)

    def _fill(self, names: Sequence[str], into: dict[str, Any]) -> None:
        for name in names:
            if name in _SET_BY_PLAN or name == self.spec.omit_field:
                continue
            if name not in self.values and name not in into:
                into[name] = self._text(name)

    def _next_step(self, into: dict[str, Any], moment: float) -> None:
        horizon = _next_after(self.acts, moment, self.end)
        into[f.NEXT_STEP] = pick(self.rng, _NEXT_STEPS)
        into[f.NEXT_STEP_DATE] = iso_day(day_of(horizon) + 2 + between(self.rng, 0, 10))

    def _create(self) -> None:
        """The whole record as the rep first saved it."""
        spec, rng, cast = self.spec, self.rng, self.cast
        first, created = self.schedule.path[0]
        stage = self.pipeline.stages[first]
        record: dict[str, Any] = {
            f.NAME: f"{cast.account_name} - {_deal_title(self.pipeline, rng)}",
            f.ACCOUNT_NAME: cast.account_name,
            "account_id": cast.account_id,
            f.STAGE: stage.name,
            f.PIPELINE: self.pipeline.id,
            f.AMOUNT: self.amount,
            f.CURRENCY: self.currency,
            f.OWNER_ID: cast.owner_id,
            f.MANAGER_ID: cast.manager_id,
            f.FORECAST_CATEGORY: stage.forecast_category,
            f.PROBABILITY: _probability(self.pipeline, first),
        }
        if self.closes.initial is not None and spec.omit_field != f.CLOSE_DATE:
            record[f.CLOSE_DATE] = iso_day(self.closes.initial)
        if spec.omit_field == f.AMOUNT:
            del record[f.AMOUNT]
        if spec.omit_field != f.NEXT_STEP:
            self._next_step(record, created)
        if spec.omit_field != f.NEXT_MEETING_DATE:
            horizon = _next_after(self.acts, created, self.end)
            record[f.NEXT_MEETING_DATE] = iso_day(day_of(horizon) + 2 + between(rng, 0, 10))
        if rng.random() < 0.4 and _is_gate_field(self.pipeline, "identify_pain"):
            self._fill(["identify_pain"], record)
        self._fill(self.pipeline.required_by_position[first], record)
        opened_with = self._first_contacts()
        self.seen.extend(opened_with)
        record[f.CONTACT_COUNT] = len(opened_with)
        self._emit(Change(created, "create", record, opened_with, new_contacts=opened_with))

    def _first_contacts(self) -> tuple[str, ...]:
        """Who the deal was opened with (and who joins the first touch): two
        people for a big deal, so that it is never single-threaded, not even
        between its creation and the first logged activity."""
        return self.cast.contact_ids[: 2 if self.big and self.engaged >= 2 else 1]

    def _move(self, index: int) -> None:
        """A stage move, with its gate fields filled on the same save or
        shortly before it."""
        position, entered = self.schedule.path[index]
        before = self.schedule.path[index - 1][1]
        stage = self.pipeline.stages[position]
        update: dict[str, Any] = {
            f.STAGE: stage.name,
            f.FORECAST_CATEGORY: stage.forecast_category,
            f.PROBABILITY: _probability(self.pipeline, position),
        }
        if stage.closed:
            closing_day = day_of(entered)
            if self.closes.initial is not None and closing_day != self.closes.initial:
                update[f.CLOSE_DATE] = iso_day(closing_day)
            self._emit(Change(entered, "update", update))
            return
        needed: dict[str, Any] = {}
        self._fill(self.pipeline.required_by_position[position], needed)
        if needed and self.rng.random() < 0.4:
            earlier = entered - self.rng.uniform(0.02, 0.5) * (entered - before)
            self._emit(Change(earlier, "update", needed))
        else:
            update.update(needed)
        if entered < self.freeze_ns and self.spec.omit_field != f.NEXT_STEP:
            self._next_step(update, entered)
        if stage.name == _proposal_like(self.pipeline) and self._may_revise_amount():
            revised = _round_amount(self.amount * self.rng.uniform(0.85, 1.15))
            if revised < BIG_DEAL:
                update[f.AMOUNT] = revised
        self._emit(Change(entered, "update", update))

    def _may_revise_amount(self) -> bool:
        """Only small deals are re-quoted, so no revision crosses the size at
        which a deal must be multi-threaded."""
        spec = self.spec
        plain = spec.amount is None and spec.amount_floor is None and not self.big
        return plain and spec.omit_field != f.AMOUNT and self.rng.random() < 0.3

    def _touch(self, index: int, following: float) -> None:
        """An activity and, a little later (but before the deal's next moment,
        so that edits stay in the order they were decided), the next meeting
        and next step kept ahead of the following touch: a rep books the next
        call before hanging up. Contacts join over the first touches."""
        rng, spec, acts = self.rng, self.spec, self.acts
        moment = acts[index]
        if index == 0:
            contacts = self._first_contacts()
        else:
            contacts = (self.cast.contact_ids[index % self.engaged],)
        kind = pick(rng, _KINDS)
        subject = pick(rng, _SUBJECTS[kind])
        new = tuple(c for c in contacts if c not in self.seen)
        self._emit(Change(moment, "activity", {}, contacts, kind, subject, new))
        update: dict[str, Any] = {}
        if new:
            self.seen.extend(new)
            update[f.CONTACT_COUNT] = len(self.seen)
        if index + 1 < len(acts):
            horizon = acts[index + 1]
        elif spec.silence is not None:
            horizon = moment + rng.uniform(2.0, 10.0) * DAY
        else:
            horizon = self.end
        due = day_of(horizon) + 2
        if spec.omit_field != f.NEXT_MEETING_DATE:
            if spec.freeze_next_meeting and moment == self.last_nm:
                update[f.NEXT_MEETING_DATE] = iso_day(day_of(moment) + between(rng, 1, 3))
            elif moment < self.freeze_nm and _day(self.values.get(f.NEXT_MEETING_DATE)) < due:
                update[f.NEXT_MEETING_DATE] = iso_day(due + between(rng, 0, 10))
        if spec.omit_field != f.NEXT_STEP:
            if spec.freeze_next_step and moment == self.last_ns:
                update[f.NEXT_STEP_DATE] = iso_day(day_of(moment) + between(rng, 1, 3))
            elif moment < self.freeze_ns and _day(self.values.get(f.NEXT_STEP_DATE)) < due:
                update[f.NEXT_STEP] = pick(rng, _NEXT_STEPS)
                update[f.NEXT_STEP_DATE] = iso_day(due + between(rng, 0, 10))
        if update:
            later = moment + rng.uniform(0.1, 0.9) * min(3000.0, following - moment)
            self._emit(Change(later, "update", update))

    def _override_forecast(self, category: str) -> None:
        """A rep sets the category by hand after the last stage move (stage
        moves reset it to the stage's own)."""
        entered = self.schedule.path[-1][1]
        latest = self.schedule.last_activity
        moment = max(entered + 1.0, self.rng.uniform(entered, latest))
        self._emit(Change(moment, "update", {f.FORECAST_CATEGORY: category}))


def _is_gate_field(pipeline: Pipeline, name: str) -> bool:
    return any(name in s.requires for s in pipeline.stages)


def _proposal_like(pipeline: Pipeline) -> str | None:
    """The stage where a quote firms up the amount: the first one that
    requires a close date."""
    return next((s.name for s in pipeline.stages if f.CLOSE_DATE in s.requires), None)


def _deal_title(pipeline: Pipeline, rng: random.Random) -> str:
    if pipeline.default:
        return pick(rng, _PRODUCTS)
    return f"{pipeline.name or pipeline.id} FY{between(rng, 26, 28)}"


def _probability(pipeline: Pipeline, position: int) -> float:
    stage = pipeline.stages[position]
    if stage.closed:
        return 100.0 if stage.won else 0.0
    opens = pipeline.open_positions
    rank = opens.index(position)
    return float(round((10 + 80 * rank / max(1, len(opens) - 1)) / 10) * 10)


def _round_amount(value: float) -> float:
    return float(round(value / 500) * 500)


def _amount(pipeline: Pipeline, spec: Spec, rng: random.Random) -> tuple[float, str]:
    """Log-normal, 5k-500k: most deals are small, a long tail is six figures."""
    if spec.amount is not None:
        return spec.amount, "USD"
    if spec.amount_floor is not None:
        top = max(spec.amount_floor * 1.2, 500_000.0)
        return _round_amount(rng.uniform(spec.amount_floor * 1.15, top)), "USD"
    median = 40_000.0 if pipeline.default else 60_000.0
    value = min(500_000.0, max(5_000.0, median * math.exp(rng.gauss(0.0, 0.9))))
    return _round_amount(value), "EUR" if rng.random() < 0.15 else "USD"


def _next_after(times: Sequence[float], moment: float, default: float) -> float:
    for t in times:
        if t > moment:
            return t
    return default


def _freeze_time(frozen: bool, window: Window, created: float, rng: random.Random) -> float:
    """After this moment a frozen field is never refreshed again."""
    if not frozen:
        return math.inf
    moment = window.as_of - rng.uniform(8.0, 30.0) * DAY
    if moment <= created + 0.2 * DAY:
        raise Infeasible("no room to let the date lapse")
    return moment


def _day(value: Any) -> int:
    return ordinal_of(value) if isinstance(value, str) else 0


# ---- close dates ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ClosePlan:
    initial: int | None
    pushes: tuple[tuple[float, int], ...] = ()


def _close_plan(
    rules: RuleSet,
    pipeline: Pipeline,
    window: Window,
    spec: Spec,
    schedule: _Schedule,
    rng: random.Random,
) -> _ClosePlan:
    """The close date a deal is created with and every later push. Clean
    pushes stay well inside the slip thresholds; planted slips exceed one of
    them clearly; closed deals are pulled in, never pushed, when they close."""
    created = schedule.path[0][1]
    today = window.today
    horizon = pipeline.thresholds.parked_close_date_days
    slip = pipeline.thresholds.close_date_slip
    first_day = day_of(created)
    if spec.omit_field == f.CLOSE_DATE:
        return _ClosePlan(None)
    if spec.outcome in ("won", "lost"):
        assert schedule.ended is not None
        close_day = day_of(schedule.ended)
        latest = max(close_day + 1, first_day + min(250, horizon - 20))
        return _ClosePlan(between(rng, close_day + 1, min(close_day + 60, latest)))
    if spec.close == "placeholder":
        dates = rules.junk.placeholder_dates
        chosen = next((d for d in dates if d.toordinal() > today), dates[0])
        return _ClosePlan(chosen.toordinal())
    if spec.close == "parked":
        return _ClosePlan(today + horizon + between(rng, 15, 230))
    if spec.close == "past":
        if first_day + 5 > today - 3:
            raise Infeasible("created too late for its close date to have passed")
        return _ClosePlan(between(rng, first_day + 5, min(today - 3, first_day + 90)))
    final = today + between(rng, 10, min(150, horizon - 40))
    final = min(final, first_day + min(250, horizon - 20))
    if final < today + 7:
        raise Infeasible("no future close date inside the planning horizon")
    if spec.close == "slipping":
        deltas = _slip(slip.max_pushes, slip.max_days, rng)
    elif rng.random() < 0.3 and slip.max_days >= 15 and slip.max_pushes >= 1:
        count = between(rng, 1, max(1, min(2, slip.max_pushes)))
        deltas = _split(between(rng, 3 * count, min(slip.max_days - 10, 35)), count, rng)
    else:
        return _ClosePlan(final)
    return _with_pushes(final, deltas, created, schedule.last_activity, spec, rng)


def _slip(max_pushes: int, max_days: int, rng: random.Random) -> list[int]:
    """Deltas (days) that break the slip rule by count or by total, never by a
    hair: a count breach keeps the total clearly under ``max_days``."""
    count = max_pushes + 1
    if rng.random() < 0.5 and max_days - 3 >= 3 * count:
        return _split(between(rng, 3 * count, max_days - 3), count, rng)
    count = between(rng, 1, max(1, max_pushes))
    return _split(max_days + between(rng, 5, 40), count, rng)


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    cuts = sorted(rng.sample(range(1, total), parts - 1)) if parts > 1 else []
    edges = [0, *cuts, total]
    return [b - a for a, b in itertools.pairwise(edges)]


def _with_pushes(
    final: int,
    deltas: Sequence[int],
    created: float,
    last_edit: float,
    spec: Spec,
    rng: random.Random,
) -> _ClosePlan:
    initial = final - sum(deltas)
    if initial < day_of(created) + 3:
        if spec.close == "slipping":
            raise Infeasible("no room for the slips before the close date")
        return _ClosePlan(final)
    low = created + 0.2 * (last_edit - created)
    moments = sorted(rng.uniform(low, last_edit) for _ in deltas)
    pushes: list[tuple[float, int]] = []
    current = initial
    for moment, delta in zip(moments, deltas, strict=True):
        if current < day_of(moment) + 2:
            if spec.close == "slipping":
                raise Infeasible("the close date passed before it was pushed")
            return _ClosePlan(final)
        current += delta
        pushes.append((moment, current))
    return _ClosePlan(initial, tuple(pushes))
