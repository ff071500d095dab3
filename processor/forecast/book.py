"""Per-bucket totals of manager rollups, kept incrementally.

A bucket is (manager, fiscal period). Its totals are the sums over the
entries of the opportunities that currently count in it; the stream keeps
one slot per (manager, opportunity) and, each time a slot changes, takes the
old entry out and puts the new one in here, so an event costs one
subtraction and one addition whatever the size of the bucket. Sums are kept
in exact decimals (each float amount as its shortest decimal form), so any
order of additions and subtractions ends on the same total: a deal that
moves in and out a thousand times leaves no rounding residue.

Buckets that changed are marked dirty; the stream publishes their complete
snapshots at most once per interval.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Context, Decimal

from processor.forecast.entry import Entry, Outcome
from processor.forecast.fiscal import FiscalCalendar
from schemas import ms_to_datetime
from schemas.forecast import (
    CATEGORY_ORDER,
    CategoryRollup,
    CurrencyTotal,
    OverrideView,
    RollupRecord,
)

_EXACT = Context(prec=80)
"""Wide enough that sums of realistic amounts (2-6 decimals, under 10^30)
are exact."""

_NAMESPACE = uuid.UUID("9a0c5a1e-3f3b-4f5e-8a61-2a7f4b1c0d42")

BucketKey = tuple[str, str]
"""(manager id, period)."""


def exact(amount: float) -> Decimal:
    return Decimal(repr(amount))


def rollup_record_id(manager_id: str, period: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{manager_id}\x1f{period}"))


@dataclass(slots=True)
class Tally:
    amount: Decimal = field(default_factory=Decimal)
    count: int = 0


@dataclass
class Bucket:
    tallies: dict[tuple[str, Outcome, str], Tally] = field(default_factory=dict)
    """(category, outcome, currency) -> sum and count."""
    overrides: dict[str, OverrideView] = field(default_factory=dict)
    members: int = 0
    updated_ms: int = 0

    def count(self, entry: Entry, sign: int) -> None:
        key = (entry.category, entry.outcome, entry.currency)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = Tally()
        tally.count += sign
        if entry.amount is not None:
            tally.amount = _EXACT.add(tally.amount, exact(entry.amount) * sign)
        if tally.count == 0:
            del self.tallies[key]
        self.members += sign

    @property
    def exists(self) -> bool:
        """Something to show: a deal counts here, or an override stands."""
        return self.members > 0 or bool(self.overrides)

    def totals(self, category: str, outcomes: tuple[Outcome, ...]) -> list[CurrencyTotal]:
        sums: dict[str, Tally] = {}
        for (cat, outcome, currency), tally in self.tallies.items():
            if cat == category and outcome in outcomes:
                into = sums.setdefault(currency, Tally())
                into.amount = _EXACT.add(into.amount, tally.amount)
                into.count += tally.count
        return [CurrencyTotal(currency=c, amount=float(t.amount), count=t.count)
                for c, t in sorted(sums.items())]

    def system_amount(self, category: str, currency: str) -> float:
        for total in self.totals(category, ("open", "won", "lost")):
            if total.currency == currency:
                return total.amount
        return 0.0


class Book:
    """The buckets of one partition of the rollup table."""

    def __init__(self, calendar: FiscalCalendar) -> None:
        self.calendar = calendar
        self.buckets: dict[BucketKey, Bucket] = {}
        self.dirty: set[BucketKey] = set()

    def _bucket(self, key: BucketKey) -> Bucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket()
        return bucket

    def move(self, manager: str, old: Entry | None, new: Entry | None, at_ms: int) -> None:
        """One member's slot changed from ``old`` to ``new`` (None: no entry)."""
        if old == new:
            return
        for entry, sign in ((old, -1), (new, 1)):
            if entry is None:
                continue
            key = (manager, entry.period)
            bucket = self._bucket(key)
            bucket.count(entry, sign)
            bucket.updated_ms = max(bucket.updated_ms, at_ms)
            self.dirty.add(key)

    def set_override(
        self, manager: str, period: str, category: str, view: OverrideView | None, at_ms: int
    ) -> None:
        key = (manager, period)
        bucket = self._bucket(key)
        if view is None:
            bucket.overrides.pop(category, None)
        else:
            bucket.overrides[category] = view
        bucket.updated_ms = max(bucket.updated_ms, at_ms)
        self.dirty.add(key)

    def bucket(self, manager: str, period: str) -> Bucket | None:
        bucket = self.buckets.get((manager, period))
        return bucket if bucket is not None and bucket.exists else None

    def has_manager(self, manager: str) -> bool:
        return any(m == manager and b.exists for (m, _), b in self.buckets.items())

    def record(self, manager: str, period: str) -> RollupRecord:
        """The complete snapshot of a bucket (all zeros once it emptied)."""
        bucket = self.buckets.get((manager, period)) or Bucket()
        start, end = self.calendar.bounds(period)
        categories = []
        for category in CATEGORY_ORDER:
            totals = bucket.totals(category, ("open", "won", "lost"))
            override = bucket.overrides.get(category)
            categories.append(CategoryRollup(
                category=category,
                count=sum(t.count for (c, _, _), t in bucket.tallies.items() if c == category),
                totals=totals,
                won=bucket.totals(category, ("won",)),
                lost=bucket.totals(category, ("lost",)),
                override=override,
                forecast=forecast_totals(totals, override),
            ))
        return RollupRecord(
            record_id=rollup_record_id(manager, period), manager_id=manager, period=period,
            period_start=start, period_end=end,
            fiscal_year_start_month=self.calendar.first_month,
            count=bucket.members, categories=categories,
            updated_at=ms_to_datetime(bucket.updated_ms),
        )

    def pending(self) -> list[RollupRecord]:
        """Snapshots of the buckets that changed since the last publish."""
        return [self.record(manager, period) for manager, period in sorted(self.dirty)]

    def published(self, records: list[RollupRecord]) -> None:
        """Those snapshots are acknowledged: clean, and an emptied bucket
        without an override is forgotten (its zero snapshot went out)."""
        for record in records:
            key = (record.manager_id, record.period)
            self.dirty.discard(key)
            bucket = self.buckets.get(key)
            if bucket is not None and not bucket.exists:
                del self.buckets[key]


def forecast_totals(
    totals: list[CurrencyTotal], override: OverrideView | None
) -> list[CurrencyTotal]:
    """The manager's call wins in its currency; the other currencies keep the
    system's figure (amounts in different currencies are never added). The
    same rule as ``forecast_amount`` in deploy/warehouse/sql/latest_rollups.sql."""
    if override is None:
        return totals
    by_currency = {t.currency: t for t in totals}
    system = by_currency.get(override.currency)
    by_currency[override.currency] = CurrencyTotal(
        currency=override.currency, amount=override.amount, count=system.count if system else 0)
    return [by_currency[c] for c in sorted(by_currency)]
