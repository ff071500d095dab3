"""A rollup snapshot cut into flat warehouse rows, one per (manager, period,
category, currency).

JDBC sinks cannot map the nested per-category, per-currency totals of a
``RollupRecord`` to columns, so the rollup agent publishes this cut beside
each snapshot. The rows are taken from the snapshot itself (never summed a
second time), so the two cannot disagree. A row is upserted on its
deterministic id; a currency that a category no longer holds is published
once more with zeros (the caller passes the keys it published last time),
so a warehouse table never keeps a stale total.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from schemas.forecast import CurrencyTotal, RollupRecord, RollupRowRecord

_NAMESPACE = uuid.UUID("5d0f1f0e-7c52-4d0b-9a4e-3b8d2a6c1e77")

RowKey = tuple[str, str]
"""(category, currency) within one rollup."""


def rollup_row_id(manager_id: str, period: str, category: str, currency: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{manager_id}\x1f{period}\x1f{category}\x1f{currency}"))


def _by_currency(totals: list[CurrencyTotal]) -> dict[str, CurrencyTotal]:
    return {t.currency: t for t in totals}


def rollup_rows(
    record: RollupRecord, published_before: Iterable[RowKey] = ()
) -> list[RollupRowRecord]:
    """Every row the snapshot holds: each currency with a system total in a
    category, the currency of a standing override (with a zero system total
    when none is in it), and zeros for each key published before that the
    snapshot no longer holds. Ordered by category (in the record's order),
    then currency."""
    rows: list[RollupRowRecord] = []
    before = set(published_before)
    for line in record.categories:
        totals, won, lost = (_by_currency(line.totals), _by_currency(line.won),
                             _by_currency(line.lost))
        override = line.override
        currencies = set(totals)
        if override is not None:
            currencies.add(override.currency)
        currencies |= {currency for category, currency in before if category == line.category}
        for currency in sorted(currencies):
            total, w, lo = totals.get(currency), won.get(currency), lost.get(currency)
            mine = override if override is not None and override.currency == currency else None
            rows.append(RollupRowRecord(
                record_id=rollup_row_id(record.manager_id, record.period, line.category,
                                        currency),
                rollup_id=record.record_id, manager_id=record.manager_id,
                period=record.period, period_start=record.period_start,
                period_end=record.period_end, category=line.category, currency=currency,
                amount=total.amount if total else 0.0, count=total.count if total else 0,
                won_amount=w.amount if w else 0.0, won_count=w.count if w else 0,
                lost_amount=lo.amount if lo else 0.0, lost_count=lo.count if lo else 0,
                override_id=mine.override_id if mine else None,
                override_amount=mine.amount if mine else None,
                override_currency=mine.currency if mine else None,
                override_reason=mine.reason if mine else None,
                override_by=mine.submitted_by if mine else None,
                override_at=mine.submitted_at if mine else None,
                updated_at=record.updated_at,
            ))
    return rows


def standing(rows: Iterable[RollupRowRecord]) -> list[RowKey]:
    """The keys to zero next time if they are gone: rows with a deal or an
    override (a row just zeroed needs no second zero)."""
    return sorted((r.category, r.currency) for r in rows
                  if r.count > 0 or r.override_id is not None)
