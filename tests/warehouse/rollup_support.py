"""What the rollup warehouse tests share: rollup rows and override-log
records produced by the real rollup code (the state processor feeding the
rollup agent's work over its table, with overrides set, replaced and
withdrawn), and the latest rollups computed in Python from the nested
rollup snapshots, independently of the row cut and of the SQL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from processor.rules import default_rules
from schemas.forecast import OverrideLogRecord, RollupRecord
from tests.builders import HEALTHY_DISCOVERY, HEALTHY_NEGOTIATION, change
from tests.forecast.harness import ROLLUP_TOPICS, RollupSide, StateSide
from tests.forecast.test_rollups import CALENDAR, submit

from .support import sql

Message = tuple[bytes | None, bytes]
LatestRow = tuple[Any, ...]
"""The columns latest_rollups.sql returns, in its order."""
LATEST_COLUMNS = (
    "manager_id, period, period_start, period_end, category, currency, system_amount, "
    "deal_count, won_amount, won_count, lost_amount, lost_count, override_id, "
    "override_amount, override_reason, override_by, override_at, forecast_amount, "
    "forecast_source, category_override_currency, updated_at")
OVERRIDE_LOG_COLUMNS = tuple(
    f for f in OverrideLogRecord.model_fields if f not in ("system_totals", "previous_override"))


@dataclass(frozen=True)
class PublishedRollups:
    rows: list[Message]
    """forecast.rollup-rows, in publishing order."""
    override_log: list[Message]
    latest: list[RollupRecord]
    """The last snapshot of each (manager, period): what forecast.rollups ends on."""


def _deal(manager: str, close: str, amount: float, currency: str = "USD",
          base: dict[str, Any] = HEALTHY_DISCOVERY, **more: Any) -> dict[str, Any]:
    return {**base, "manager_id": manager, "close_date": close, "amount": amount,
            "currency": currency, **more}


def published_rollups() -> PublishedRollups:
    """Two managers over two fiscal quarters, flushed between steps as the
    timer would: deals in three currencies, won and lost, a currency leaving
    a category, a deal moving to another manager, an override set, replaced
    by one in another currency (with no deal in it), and one withdrawn."""
    side, rollups = StateSide(default_rules(), CALENDAR), RollupSide(CALENDAR)
    rollups.deliver(side.entries(
        change(0, opp="006A", **_deal("m-1", "2026-03-31", 100.0)),
        change(0, opp="006B", **_deal("m-1", "2026-03-15", 50.25, "EUR", HEALTHY_NEGOTIATION)),
        change(0, opp="006C", **_deal("m-1", "2026-04-02", 30.0, base=HEALTHY_NEGOTIATION)),
        change(0, opp="006D", **_deal("m-2", "2026-02-20", 70.0, "GBP")),
        change(0, opp="006E", **_deal("m-2", "2026-03-01", 20.0, stage="Closed Won")),
        change(0, opp="006F", **_deal("m-1", "2026-01-10", 5.5, stage="Closed Lost")),
        change(0, opp="006G", **_deal("m-1", "2026-01-12", 8.0, stage="Closed Won")),
    ))
    rollups.flush(1)
    assert submit(rollups, override_id="ov-1", amount=500.0, currency="USD")[0] == ["accepted"]
    assert submit(rollups, override_id="ov-3", manager_id="m-2", category="Pipeline",
                  amount=15.0, currency="USD", reason="GBP deal is soft")[0] == ["accepted"]
    rollups.flush(2)
    rollups.deliver(side.entries(
        change(1, opp="006B", currency="USD"),
        change(1, opp="006D", manager_id="m-1"),
        change(1, opp="006A", amount=120.0),
    ))
    assert submit(rollups, override_id="ov-2", amount=450.0, currency="EUR",
                  reason="Re-forecast in EUR")[0] == ["accepted"]
    assert submit(rollups, override_id="ov-4", manager_id="m-2", category="Pipeline",
                  amount=None, currency=None, reason="deal gone")[0] == ["accepted"]
    rollups.flush(3)
    return PublishedRollups(
        rows=rollups.publish.on(ROLLUP_TOPICS.rollup_rows),
        override_log=rollups.publish.on(ROLLUP_TOPICS.override_log),
        latest=list(rollups.latest().values()),
    )


def reference_latest(records: Iterable[RollupRecord]) -> list[LatestRow]:
    """The current rollup per (manager, period, category, currency), read
    from the nested snapshots: each currency with a deal, plus the override's
    currency, the override applied on its own currency's row."""
    out: list[LatestRow] = []
    for record in records:
        for line in record.categories:
            totals = {t.currency: t for t in line.totals}
            won = {t.currency: t for t in line.won}
            lost = {t.currency: t for t in line.lost}
            ov = line.override
            currencies = set(totals) | ({ov.currency} if ov else set())
            for currency in currencies:
                t, w, lo = totals.get(currency), won.get(currency), lost.get(currency)
                mine = ov if ov is not None and ov.currency == currency else None
                amount = t.amount if t else 0.0
                out.append((
                    record.manager_id, record.period, record.period_start, record.period_end,
                    line.category, currency, amount, t.count if t else 0,
                    w.amount if w else 0.0, w.count if w else 0,
                    lo.amount if lo else 0.0, lo.count if lo else 0,
                    mine.override_id if mine else None, mine.amount if mine else None,
                    mine.reason if mine else None, mine.submitted_by if mine else None,
                    mine.submitted_at if mine else None,
                    mine.amount if mine else amount, "override" if mine else "system",
                    ov.currency if ov else None, record.updated_at,
                ))
    return sorted(out, key=_order)


def _order(row: LatestRow) -> tuple[str, str, str, str]:
    return (row[0], row[1], row[4], row[5])


def latest_rows(conn: psycopg.Connection[Any]) -> list[LatestRow]:
    with conn.cursor() as cur:
        cur.execute(f"select {LATEST_COLUMNS} from ({sql('latest_rollups.sql')}) as latest")
        return sorted((tuple(r) for r in cur.fetchall()), key=_order)


def reference_override_log(messages: Iterable[Message]) -> dict[str, dict[str, Any]]:
    """override_id -> the columns the sink keeps of its record."""
    out: dict[str, dict[str, Any]] = {}
    for _, value in messages:
        record = OverrideLogRecord.model_validate_json(value)
        out[record.override_id] = record.model_dump(include=set(OVERRIDE_LOG_COLUMNS))
    return out


def override_log_rows(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(f"select {', '.join(OVERRIDE_LOG_COLUMNS)} from forecast_override_log")
        return {row[0]: dict(zip(OVERRIDE_LOG_COLUMNS, row, strict=True))
                for row in cur.fetchall()}
