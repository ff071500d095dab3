"""The interval SQL's rules, on a real PostgreSQL, without Kafka Connect.

Rows go in through a small upsert loader into the table the committed DDL
creates, which the end-to-end test shows is the table the sink creates.
Hand-made histories pin down what the simulated traffic cannot be relied on
to produce: category changes within a stage (a transition kind the engine
is gaining), retractions of a middle transition, same-millisecond moves.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from .conftest import NewDatabase
from .support import COLUMNS, Published, as_row, interval_rows, load, reference_intervals, sql

pytestmark = pytest.mark.integration

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def _table(new_database: NewDatabase) -> psycopg.Connection[Any]:
    _, conn = new_database()
    conn.execute(sql("forecast_stage_history.sql"))
    conn.commit()
    return conn


def _order(at: datetime, tiebreak: int = 0) -> int:
    """The engine's event_order: event time in ms, then a 20-bit tie-break."""
    return (int(at.timestamp() * 1000) << 20) | tiebreak


def _row(transition: str, at: datetime, previous: str | None, new: str | None,
         entered: datetime | None = None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        record_id=str(uuid.uuid4()), opportunity_id="opp-1", pipeline="new_business",
        transition=transition, previous_stage=previous, new_stage=new,
        previous_stage_entered_at=entered if previous else None,
        previous_stage_left_at=at if previous else None,
        seconds_in_previous_stage=int((at - entered).total_seconds()) if entered else None,
        transitioned_at=at, event_order=_order(at), is_closed=False, is_won=False,
        close_date_push_count=0,
        source_event_id=f"evt-{uuid.uuid4().hex[:8]}", retracted=False,
    )
    row.update(values)
    return row


def test_loaded_history_gives_the_reference_intervals(
    new_database: NewDatabase, published: Published
) -> None:
    conn = _table(new_database)
    load(conn, (as_row(r) for r in published.records))
    reference = reference_intervals(as_row(r) for r in published.latest().values())
    assert len(reference) >= 80
    assert interval_rows(conn) == reference


def test_category_changes_and_retracted_moves_bound_no_interval(
    new_database: NewDatabase,
) -> None:
    conn = _table(new_database)
    h = timedelta(hours=1)
    created = _row("created", T0, None, "Prospecting", amount=1000.0, currency="USD",
                   forecast_category="Pipeline")
    category = _row("category_changed", T0 + h, "Prospecting", "Prospecting", T0,
                    amount=1000.0, currency="USD", forecast_category="Best Case")
    moved = _row("stage_changed", T0 + 2 * h, "Prospecting", "Discovery", T0,
                 amount=2500.0, currency="USD", forecast_category="Best Case")
    never = _row("stage_changed", T0 + 3 * h, "Discovery", "Proposal", T0 + 2 * h,
                 retracted=True)
    deleted = _row("deleted", T0 + 4 * h, "Discovery", None, T0 + 2 * h)
    restored = _row("restored", T0 + 6 * h, None, "Discovery", amount=2500.0,
                    currency="USD", forecast_category="Commit")
    # Out of order and with a redelivery: the loader upserts like the sink.
    load(conn, [restored, never, created, deleted, category, moved, created])

    assert interval_rows(conn) == [
        ("opp-1", "Prospecting", T0, T0 + 2 * h, 7200, "stage_changed",
         1000.0, "USD", "Pipeline"),
        ("opp-1", "Discovery", T0 + 2 * h, T0 + 4 * h, 7200, "deleted",
         2500.0, "USD", "Best Case"),
        ("opp-1", "Discovery", T0 + 6 * h, None, None, None, 2500.0, "USD", "Commit"),
    ]

    # The retraction is withdrawn by a later version under the same id:
    # the move to Proposal is back, and ends the Discovery interval.
    load(conn, [{**never, "retracted": False}])
    assert [row[1:6] for row in interval_rows(conn)][1:3] == [
        ("Discovery", T0 + 2 * h, T0 + 3 * h, 3600, "stage_changed"),
        ("Proposal", T0 + 3 * h, T0 + 4 * h, 3600, "deleted"),
    ]


def test_moves_in_one_millisecond_keep_their_order(new_database: NewDatabase) -> None:
    conn = _table(new_database)
    created = _row("created", T0, None, "Prospecting")
    moved = _row("stage_changed", T0, "Prospecting", "Discovery", T0,
                 event_order=_order(T0, 7))
    # Whatever the record ids, event_order says which came first (the CRM's
    # sequence within the millisecond); interval_rows lists same-time
    # intervals by stage name.
    for first, second in (("a", "b"), ("b", "a")):
        conn.execute("delete from forecast_stage_history")
        load(conn, [{**created, "record_id": first}, {**moved, "record_id": second}])
        assert [row[1:6] for row in interval_rows(conn)] == [
            ("Discovery", T0, None, None, None),
            ("Prospecting", T0, T0, 0, "stage_changed"),
        ]


def test_partial_seconds_round_down_as_the_records_count_them(
    new_database: NewDatabase,
) -> None:
    conn = _table(new_database)
    entered = T0 + timedelta(milliseconds=999)
    left = T0 + timedelta(seconds=90, milliseconds=1)
    load(conn, [_row("created", entered, None, "Prospecting"),
                _row("stage_changed", left, "Prospecting", "Discovery", entered,
                     seconds_in_previous_stage=89)])
    assert interval_rows(conn)[0][4] == 89
