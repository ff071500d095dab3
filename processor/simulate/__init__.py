"""Realistic, deterministic CRM change traffic with a known truth.

``simulate`` (everything in memory) and ``iter_events`` (bounded memory)
produce the same bytes for the same arguments: a pipeline of opportunities
told as canonical stories (``story``), some with planted data-quality problems
(``pathologies``), rendered as Salesforce CDC, HubSpot webhooks or generic
events (``render``), delivered at least once and slightly out of order. The
truth says which rules a correct engine has open for each opportunity at
``as_of``, the end of the window.

How the truth reads the rules (``pathologies.Oracle``), so an engine can
agree; it follows ``processor/rules/checks.py``'s "one problem, one alert":

- Gates: the current stage's ``required_by_position`` fields; missing means
  absent or blank, except a field a dedicated rule watches from this stage on
  (amount, next step, next meeting), which raises that rule instead; junk is
  the rules file's ``junk`` (``RuleSet.junk_detector``). Numbers are never
  junk (amount 0 is ``amount_invalid``).
- Staleness: days since the last activity (the creation when none) against
  the stage's ``stale_after_days`` (else ``default_stale_after_days``), and
  ``close_out.no_activity_days``; a close-out supersedes the plain
  no-activity rule. Time in stage runs from the event time of the move into
  it, against ``max_days_in_stage`` (no limit, no rule).
- Close dates: past when before the as_of date; parked when more than
  ``parked_close_date_days`` after it; a placeholder date is junk only. A
  push is a change to a later date (closing a deal pulls its date in, never
  pushes it); slipping when pushes exceed ``max_pushes`` or the date moved
  more than ``max_days`` in all.
- Next meeting / next step, from the ``*_required_from`` stage on: a next
  meeting date not after the as_of date, or a next step that is empty or
  whose date is before it.
- Forecast: the stage's category and any more conservative one (Omitted <
  Pipeline < Best Case < Commit < Closed) are allowed.
- Single-threaded: raw amount (any currency) at or over ``min_amount`` and
  fewer distinct contacts engaged than ``min_contacts``.
- Skips: a move forward over an open stage (a one-off notice, counted as
  fired); a move into a closed stage is never a skip (a deal can be lost
  from any stage). Planted skips are the deal's latest move.
- Closed and deleted opportunities have nothing open; rules a pipeline
  disables are never in the truth.

Clean deals are clean at every moment, not just at ``as_of``: a correct
engine, fed these deliveries event by event (HubSpot batches in their order)
and swept on a schedule, never raises an alert on one.

Every quantity in the truth sits at least 1.5 days (2 for dates, 1% for the
amount) from its threshold; a draw that would not is drawn again.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal, NamedTuple

import orjson

from processor.rules.config import Pipeline, RuleSet

from .pathologies import PATHOLOGIES, Oracle, spec_for
from .render import VENDOR_FORMATS, Renderer, ids_for, renderer_for
from .story import (
    DAY,
    Cast,
    Change,
    DealStory,
    Infeasible,
    Outcome,
    Spec,
    VendorFormat,
    Window,
    tell,
)
from .story import account_name as _account_name

Format = Literal["salesforce", "hubspot", "generic", "mixed"]
FORMATS: Final[tuple[Format, ...]] = ("salesforce", "hubspot", "generic", "mixed")

MAX_PATHOLOGY_RATE: Final = 0.6
"""Above this the clean share would fall under 40%, and a pipeline that is
mostly broken tests nothing about false alarms."""

_MIXED_WEIGHTS: Final = (0.45, 0.35, 0.2)
_SECONDARY_SHARE: Final = 0.1
"""Share of deals in the second pipeline (renewals in the default rules)."""
_OUTCOMES: Final[tuple[tuple[Outcome, float], ...]] = (
    ("won", 0.12), ("lost", 0.12), ("deleted", 0.01),
)
"""Unplanted deals: how many closed or were deleted inside the window."""
_ATTEMPTS: Final = 40
_CONTACTS_PER_DEAL: Final = 5
_LATE_SHARE: Final = 0.03
_LATE_SECONDS: Final = (1.0, 240.0)
_DUPLICATE_SHARE: Final = 0.01
_DUPLICATE_SECONDS: Final = (2.0, 900.0)


class Delivery(NamedTuple):
    """One Kafka message: when it is published (non-decreasing), its key (the
    opportunity id, so that one deal stays in one partition) and its bytes.
    The event time inside may be a little older than ``at``: that is the
    out-of-order delivery."""

    at: datetime
    key: str
    payload: bytes


@dataclass
class Simulation:
    events: list[bytes]
    keys: list[str]
    """Kafka key of each event (its opportunity id)."""
    as_of: datetime
    truth: dict[str, set[str]]
    """Opportunity id -> rule ids open at ``as_of`` (empty: clean)."""
    planted: dict[str, str] = field(default_factory=dict)
    """Opportunity id -> the pathology planted on it (absent: none planted)."""
    formats: dict[str, VendorFormat] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


def simulate(
    *,
    opportunities: int,
    days: int,
    seed: int,
    fmt: Format,
    start: datetime,
    rules: RuleSet,
    pathology_rate: float = 0.35,
) -> Simulation:
    scenario = _Scenario(opportunities, days, seed, fmt, start, rules, pathology_rate)
    events: list[bytes] = []
    keys: list[str] = []
    for delivery in scenario.deliveries(keep_stories=True):
        events.append(delivery.payload)
        keys.append(delivery.key)
    return Simulation(
        events=events,
        keys=keys,
        as_of=scenario.as_of,
        truth=scenario.truth,
        planted=scenario.planted,
        formats=scenario.formats,
        stats=scenario.stats,
    )


def iter_events(
    *,
    opportunities: int,
    days: int,
    seed: int,
    fmt: Format,
    start: datetime,
    rules: RuleSet,
    pathology_rate: float = 0.35,
    truth: dict[str, set[str]] | None = None,
) -> Iterator[Delivery]:
    """The same deliveries as ``simulate``, holding only the deals that are
    live at the current point of the window (each is told twice: once to
    learn when it starts, once when the merge reaches it). ``truth``, when
    given, is filled completely before the first delivery is yielded."""
    scenario = _Scenario(opportunities, days, seed, fmt, start, rules, pathology_rate)
    if truth is not None:
        scenario.truth = truth
    return scenario.deliveries(keep_stories=False)


def as_of_for(start: datetime, days: int) -> datetime:
    """The end of a simulated window: where the truth holds."""
    return _utc(start) + timedelta(days=days)


def write_jsonl(source: Simulation | Iterable[Delivery | bytes], path: str | Path) -> int:
    """One event (or HubSpot batch) a line; returns the number of lines."""
    items: Iterable[Delivery | bytes] = source.events if isinstance(source, Simulation) else source
    count = 0
    with open(path, "wb", buffering=1 << 20) as out:
        for item in items:
            out.write(item if isinstance(item, bytes) else item.payload)
            out.write(b"\n")
            count += 1
    return count


def write_truth(simulation: Simulation, path: str | Path) -> None:
    """The truth as JSON (sorted, so that files diff), for end-to-end checks."""
    document = {
        "as_of": simulation.as_of.isoformat(),
        "truth": {k: sorted(v) for k, v in sorted(simulation.truth.items())},
        "planted": dict(sorted(simulation.planted.items())),
    }
    Path(path).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _Scenario:
    """Everything drawn once per simulation (owners, which deals get which
    pathology), and each deal's story drawn from its own seed, so that a deal
    can be told again, alone, with the same result."""

    def __init__(
        self,
        opportunities: int,
        days: int,
        seed: int,
        fmt: Format,
        start: datetime,
        rules: RuleSet,
        pathology_rate: float,
    ) -> None:
        if opportunities < 0:
            raise ValueError(f"opportunities must be >= 0, got {opportunities}")
        if days < 1:
            raise ValueError(f"days must be >= 1, got {days}")
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        if not 0.0 <= pathology_rate <= MAX_PATHOLOGY_RATE:
            raise ValueError(
                f"pathology_rate must be between 0 and {MAX_PATHOLOGY_RATE}, got {pathology_rate}"
            )
        self.count = opportunities
        self.seed = seed
        self.fmt = fmt
        self.rules = rules
        self.as_of = as_of_for(start, days)
        self.window = Window(_utc(start).timestamp(), self.as_of.timestamp())
        self.oracle = Oracle(rules)
        self.renderers: dict[VendorFormat, Renderer] = {
            v: renderer_for(v, rules) for v in VENDOR_FORMATS
        }
        self.default = rules.default_pipeline
        others = [p for p in rules.pipelines if p is not self.default]
        self.secondary: Pipeline | None = next(
            (p for p in others if p.id == "renewals"), others[0] if others else None
        )
        master = random.Random(seed)
        owners = min(20, max(8, opportunities // 50))
        managers = max(2, math.ceil(owners / 6))
        self.owners = [(n, owners + n % managers) for n in range(owners)]
        self.owner_weights = [master.uniform(0.5, 2.0) for _ in range(owners)]
        self.accounts = max(10, opportunities // 3)
        chosen = master.sample(range(opportunities), round(opportunities * pathology_rate))
        kinds = list(PATHOLOGIES)
        master.shuffle(kinds)
        self.kind_of = {index: kinds[j % len(kinds)] for j, index in enumerate(chosen)}
        self.truth: dict[str, set[str]] = {}
        self.planted: dict[str, str] = {}
        self.formats: dict[str, VendorFormat] = {}
        self.stats = {"redrawn": 0, "not_planted": 0, "unsettled": 0}

    def story(self, index: int) -> DealStory:
        rng = random.Random(f"{self.seed}:{index}")
        fmt: VendorFormat = (
            rng.choices(VENDOR_FORMATS, _MIXED_WEIGHTS)[0] if self.fmt == "mixed" else self.fmt
        )
        pipeline = self.default
        if self.secondary is not None and rng.random() < _SECONDARY_SHARE:
            pipeline = self.secondary
        cast = self._cast(index, fmt, rng)
        kind = self.kind_of.get(index)
        outcome: Outcome = "open"
        if kind is None:
            roll = rng.random()
            for name, share in _OUTCOMES:
                if roll < share:
                    outcome = name
                    break
                roll -= share
        flavor = rng.getrandbits(32)
        for planted in (kind, None) if kind is not None else (None,):
            found = self._draw(index, fmt, pipeline, cast, planted, outcome, rng, flavor)
            if found is not None:
                if planted is None and kind is not None:
                    self.stats["not_planted"] += 1
                return found
        self.stats["unsettled"] += 1
        return self._settle(index, fmt, pipeline, cast, rng, flavor)

    def _cast(self, index: int, fmt: VendorFormat, rng: random.Random) -> Cast:
        ids = ids_for(fmt)
        owner, manager = rng.choices(self.owners, self.owner_weights)[0]
        account = rng.randrange(self.accounts)
        contacts = range(index * _CONTACTS_PER_DEAL, (index + 1) * _CONTACTS_PER_DEAL)
        return Cast(
            opportunity_id=ids.opportunity(index),
            owner_id=ids.user(owner),
            manager_id=ids.user(manager),
            account_id=ids.account(account),
            account_name=_account_name(account),
            contact_ids=tuple(ids.contact(n) for n in contacts),
        )

    def _draw(
        self,
        index: int,
        fmt: VendorFormat,
        pipeline: Pipeline,
        cast: Cast,
        kind: str | None,
        outcome: Outcome,
        rng: random.Random,
        flavor: int,
    ) -> DealStory | None:
        """Draws until the story plants ``kind`` (or is clean, for None) with
        every quantity clear of its threshold; None when it never does."""
        for _ in range(_ATTEMPTS):
            where = pipeline
            spec = Spec(outcome=outcome) if kind is None else None
            if kind is not None:
                spec = spec_for(kind, where, self.rules, self.window, rng)
                if spec is None and where is not self.default:
                    where = self.default
                    spec = spec_for(kind, where, self.rules, self.window, rng)
            if spec is None:
                return None
            try:
                changes = tell(self.rules, where, self.window, spec, cast, rng)
            except Infeasible:
                self.stats["redrawn"] += 1
                continue
            verdict = self.oracle.verdict(changes, where, self.window.as_of)
            wanted = verdict.rules == frozenset() if kind is None else kind in verdict.rules
            if verdict.doubts or not wanted:
                self.stats["redrawn"] += 1
                continue
            return DealStory(index, fmt, cast.opportunity_id, cast.owner_id, where, changes,
                             verdict.rules, kind, flavor)
        return None

    def _settle(
        self,
        index: int,
        fmt: VendorFormat,
        pipeline: Pipeline,
        cast: Cast,
        rng: random.Random,
        flavor: int,
    ) -> DealStory:
        """A deal closed won leaves nothing for the truth to doubt: the last
        resort when no open story settled (never seen with the default rules)."""
        changes = tell(self.rules, pipeline, self.window, Spec(outcome="won"), cast, rng)
        verdict = self.oracle.verdict(changes, pipeline, self.window.as_of)
        return DealStory(index, fmt, cast.opportunity_id, cast.owner_id, pipeline, changes,
                         verdict.rules, None, flavor)

    def _record(self, story: DealStory) -> None:
        self.truth[story.opportunity_id] = set(story.truth)
        self.formats[story.opportunity_id] = story.fmt
        if story.planted is not None:
            self.planted[story.opportunity_id] = story.planted

    def deliveries(self, *, keep_stories: bool) -> Iterator[Delivery]:
        """Tells every deal once (recording its truth), then delivers all
        changes in event-time order: sorted at once when the stories are kept,
        else through a heap merge that tells each deal again when the clock
        reaches its creation and forgets it after its last change. Both orders
        are (time, deal, position), so both give the same bytes."""
        kept: dict[int, DealStory] = {}
        starts: list[tuple[float, int]] = []
        for index in range(self.count):
            story = self.story(index)
            self._record(story)
            starts.append((story.changes[0].at, index))
            if keep_stories:
                kept[index] = story
        ordered = self._sorted(kept) if keep_stories else self._merged(sorted(starts))
        return self._deliver(ordered)

    @staticmethod
    def _sorted(stories: dict[int, DealStory]) -> Iterator[tuple[DealStory, int]]:
        keys = [(c.at, i, seq) for i, s in stories.items() for seq, c in enumerate(s.changes)]
        keys.sort()
        for _, index, seq in keys:
            yield stories[index], seq

    def _merged(self, starts: list[tuple[float, int]]) -> Iterator[tuple[DealStory, int]]:
        live: dict[int, DealStory] = {}
        pending: list[tuple[float, int, int]] = []
        next_start = 0
        while next_start < len(starts) or pending:
            if next_start < len(starts) and (not pending or starts[next_start][0] <= pending[0][0]):
                at, index = starts[next_start]
                next_start += 1
                live[index] = self.story(index)
                heapq.heappush(pending, (at, index, 0))
                continue
            _, index, seq = heapq.heappop(pending)
            story = live[index]
            if seq + 1 < len(story.changes):
                heapq.heappush(pending, (story.changes[seq + 1].at, index, seq + 1))
            else:
                del live[index]
            yield story, seq

    def _deliver(self, ordered: Iterator[tuple[DealStory, int]]) -> Iterator[Delivery]:
        """Renders each change and passes its messages through a reorder
        buffer keyed by delivery time: most go out at once, a few minutes
        late, a few twice."""
        jitters: dict[int, random.Random] = {}
        buffer: list[tuple[int, int, str, bytes]] = []
        order = 0
        for story, seq in ordered:
            jitter = jitters.get(story.index)
            if jitter is None:
                jitter = jitters[story.index] = random.Random(f"{self.seed}:{story.index}:d")
            if seq + 1 == len(story.changes):
                del jitters[story.index]
            change = story.changes[seq]
            now = round(change.at * 1000)
            while buffer and buffer[0][0] <= now:
                yield _delivery(heapq.heappop(buffer))
            key = story.opportunity_id
            for payload in self._render(story, seq, change):
                roll = jitter.random()
                if roll >= _LATE_SHARE + _DUPLICATE_SHARE:
                    # On time, and everything still buffered is due later.
                    yield Delivery(_utc_ms(now), key, payload)
                    continue
                if roll < _LATE_SHARE:
                    late = now + round(jitter.uniform(*_LATE_SECONDS) * 1000)
                    heapq.heappush(buffer, (late, order, key, payload))
                else:
                    yield Delivery(_utc_ms(now), key, payload)
                    again = now + round(jitter.uniform(*_DUPLICATE_SECONDS) * 1000)
                    heapq.heappush(buffer, (again, order, key, _redelivered(story, payload)))
                order += 1
        while buffer:
            yield _delivery(heapq.heappop(buffer))

    def _render(self, story: DealStory, seq: int, change: Change) -> list[bytes]:
        return self.renderers[story.fmt].render(story, seq, change)


def _redelivered(story: DealStory, payload: bytes) -> bytes:
    """A second delivery of the same event: byte-identical, except that
    HubSpot counts its retries in ``attemptNumber`` (event ids stay the same)."""
    if story.fmt == "hubspot":
        return payload.replace(b'"attemptNumber":0', b'"attemptNumber":1')
    return payload


def _delivery(item: tuple[int, int, str, bytes]) -> Delivery:
    ms, _, key, payload = item
    return Delivery(_utc_ms(ms), key, payload)


def _utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


__all__ = [
    "DAY",
    "FORMATS",
    "MAX_PATHOLOGY_RATE",
    "PATHOLOGIES",
    "Delivery",
    "Format",
    "Simulation",
    "as_of_for",
    "iter_events",
    "simulate",
    "write_jsonl",
    "write_truth",
]
