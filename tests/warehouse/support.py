"""What the warehouse tests share: realistic stage-history records, the
intervals they describe (computed in Python, independently of the SQL), the
committed SQL and connector files, and a small upsert loader.

The reference intervals are read from each record's own account of the stage
it closed (previous stage, entered, left, seconds), never from ordering the
records by time: that ordering is what the SQL does, and a reference built
the same way would share its mistakes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from processor.core.clock import to_ms
from processor.replay.runner import Replay
from processor.rules import default_rules
from processor.simulate import simulate
from schemas import StageHistoryRecord

ROOT = Path(__file__).resolve().parents[2]
WAREHOUSE = ROOT / "deploy" / "warehouse"
SQL = WAREHOUSE / "sql"
CONNECT = WAREHOUSE / "connect"

STAGE_TRANSITIONS = frozenset({"created", "stage_changed", "deleted", "restored"})
COLUMNS = tuple(StageHistoryRecord.model_fields)
"""The table's columns are the record's fields (record_id first), so a field
added to the record is a column the tests expect."""

START = datetime(2026, 6, 1, tzinfo=UTC)
RECEIVED = datetime(2026, 9, 1, tzinfo=UTC)


def sql(name: str) -> str:
    return (SQL / name).read_text()


def connector(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CONNECT / name).read_text())
    return loaded


# ---- records --------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    """Stage-history records in the order the stream would publish them."""

    records: list[StageHistoryRecord]

    def latest(self) -> dict[str, StageHistoryRecord]:
        """Record id -> its last version: what an upsert on record_id keeps."""
        return {r.record_id: r for r in self.records}


def published_history(*, opportunities: int = 40, days: int = 60, seed: int = 5) -> Published:
    """Simulated CRM traffic delivered badly, through the real engine.

    On top of the simulation: a few opportunities deleted and restored
    (generic events), a sixth of all events delivered late (moved to the
    end), a few stage moves observed earlier by an event that arrives last,
    and a tenth of everything delivered twice. The engine then re-publishes
    records under their old ids with new values and retracts transitions
    that turn out never to have happened: what the warehouse must absorb.
    """
    rules = default_rules()
    sim = simulate(
        opportunities=opportunities, days=days, seed=seed, fmt="mixed", start=START, rules=rules
    )
    in_order = _replay(rules, sim.events, sim.as_of)
    events = list(sim.events)
    created = [r for r in in_order if r.transition == "created"][:4]
    for n, record in enumerate(created):
        for k, (op, hours) in enumerate((("delete", 3), ("restore", 30))):
            event = {
                "source": "warehouse-test",
                "event_id": f"wh-{n}-{k}",
                "opportunity_id": record.opportunity_id,
                "occurred_at": (record.transitioned_at + timedelta(hours=hours)).isoformat(),
                "op": op,
            }
            events.append(json.dumps(event).encode())
    rng = random.Random(seed)
    late = set(rng.sample(range(len(events)), len(events) // 6))
    delivered = [e for i, e in enumerate(events) if i not in late]
    delivered += [events[i] for i in sorted(late)]
    # An earlier observation of a stage the deal already moved to, arriving
    # last: the move happened earlier, by that event, and the transition
    # first published for the later event never happened (it is retracted).
    moves = [r for r in in_order if r.transition == "stage_changed" and r.previous_stage_entered_at]
    for n, record in enumerate(rng.sample(moves, 4)):
        assert record.previous_stage_entered_at is not None
        halfway = record.previous_stage_entered_at + (
            record.transitioned_at - record.previous_stage_entered_at
        ) / 2
        early: dict[str, Any] = {
            "source": "warehouse-test",
            "event_id": f"wh-early-{n}",
            "opportunity_id": record.opportunity_id,
            "occurred_at": halfway.isoformat(),
            "op": "upsert",
            "fields": {"stage": record.new_stage},
        }
        delivered.append(json.dumps(early).encode())
    delivered += rng.sample(delivered, len(delivered) // 10)
    return Published(_replay(rules, delivered, sim.as_of))


def _replay(rules: Any, events: Sequence[bytes], as_of: datetime) -> list[StageHistoryRecord]:
    replay = Replay(rules, received_at=RECEIVED)
    for number, raw in enumerate(events, start=1):
        replay.feed(raw, "warehouse-test.jsonl", number)
    result = replay.finish(to_ms(as_of))
    assert result.dead_letters == [], result.dead_letters[:3]
    return result.history


def keyed_messages(records: Iterable[StageHistoryRecord]) -> list[tuple[bytes | None, bytes]]:
    """As the stream publishes them: keyed by opportunity id, the record as JSON."""
    return [(r.opportunity_id.encode(), r.model_dump_json().encode()) for r in records]


# ---- reference intervals --------------------------------------------------
Interval = tuple[Any, ...]
"""(opportunity, stage, entered_at, exited_at, seconds, exited_by, amount,
currency, forecast category), the columns the SQL returns in this order."""


def reference_intervals(latest: Iterable[Mapping[str, Any]]) -> list[Interval]:
    """Every stage interval the current (non-retracted) records describe.

    A record that leaves a stage (stage_changed, deleted) states which stage,
    when it was entered and left and how long it lasted: that is a closed
    interval. A stage entered by a record that no leaving record points back
    to is the current stage: an open interval. Amount and category at entry
    come from the record that entered the stage.
    """
    live = [r for r in latest if not r["retracted"] and r["transition"] in STAGE_TRANSITIONS]
    entering = {
        (r["opportunity_id"], r["transitioned_at"]): r for r in live if r["new_stage"] is not None
    }
    intervals: list[Interval] = []
    closed: set[tuple[str, datetime]] = set()
    for r in live:
        if r["previous_stage"] is None:
            continue
        key = (r["opportunity_id"], r["previous_stage_entered_at"])
        entry = entering[key]
        assert entry["new_stage"] == r["previous_stage"], (entry, r)
        closed.add(key)
        intervals.append((
            r["opportunity_id"], r["previous_stage"], r["previous_stage_entered_at"],
            r["previous_stage_left_at"], r["seconds_in_previous_stage"], r["transition"],
            entry["amount"], entry["currency"], entry["forecast_category"],
        ))
    for key, entry in entering.items():
        if key not in closed:
            intervals.append((
                entry["opportunity_id"], entry["new_stage"], entry["transitioned_at"],
                None, None, None, entry["amount"], entry["currency"],
                entry["forecast_category"],
            ))
    return sorted(intervals, key=_order)


def _order(interval: Interval) -> tuple[str, datetime, str]:
    return (interval[0], interval[2], interval[1])


def as_row(record: StageHistoryRecord | Mapping[str, Any]) -> dict[str, Any]:
    """A record with Python values as PostgreSQL returns them (datetimes, not strings)."""
    if isinstance(record, StageHistoryRecord):
        data = record.model_dump()
        data["close_date"] = record.close_date.isoformat() if record.close_date else None
        return data
    return dict(record)


# ---- PostgreSQL ------------------------------------------------------------
def table_rows(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Record id -> the row, every column, as the warehouse holds it."""
    with conn.cursor() as cur:
        cur.execute(f"select {', '.join(COLUMNS)} from forecast_stage_history")
        return {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in cur.fetchall()}


def interval_rows(conn: psycopg.Connection[Any]) -> list[Interval]:
    """The committed interval SQL, run as it stands, in the reference's column order."""
    with conn.cursor() as cur:
        cur.execute(
            "select opportunity_id, stage, entered_at, exited_at, seconds_in_stage, exited_by, "
            "amount_at_entry, currency_at_entry, forecast_category_at_entry "
            f"from ({sql('stage_intervals.sql')}) as intervals"
        )
        return sorted((tuple(row) for row in cur.fetchall()), key=_order)


def load(conn: psycopg.Connection[Any], rows: Iterable[Mapping[str, Any]]) -> None:
    """Upsert on record_id, in order: what the sink does, for tests that need no Connect."""
    columns = ", ".join(COLUMNS)
    placeholders = ", ".join(f"%({c})s" for c in COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
    statement = (
        f"insert into forecast_stage_history ({columns}) values ({placeholders}) "
        f"on conflict (record_id) do update set {updates}"
    )
    with conn.cursor() as cur:
        for row in rows:
            cur.execute(statement, dict(row))
    conn.commit()
