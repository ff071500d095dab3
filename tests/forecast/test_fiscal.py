"""Fiscal quarters: year starts, boundaries, naming by the year it ends in."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.forecast.fiscal import FiscalCalendar, parse_period, period_of_close_date


@pytest.mark.parametrize(("first_month", "day", "period"), [
    (1, date(2026, 1, 1), "FY2026-Q1"),
    (1, date(2026, 3, 31), "FY2026-Q1"),
    (1, date(2026, 4, 1), "FY2026-Q2"),
    (1, date(2026, 12, 31), "FY2026-Q4"),
    (2, date(2026, 1, 31), "FY2026-Q4"),
    (2, date(2026, 2, 1), "FY2027-Q1"),
    (2, date(2026, 4, 30), "FY2027-Q1"),
    (2, date(2026, 5, 1), "FY2027-Q2"),
    (2, date(2027, 1, 31), "FY2027-Q4"),
    (7, date(2026, 6, 30), "FY2026-Q4"),
    (7, date(2026, 7, 1), "FY2027-Q1"),
    (10, date(2025, 10, 1), "FY2026-Q1"),
    (10, date(2026, 9, 30), "FY2026-Q4"),
    (12, date(2025, 12, 1), "FY2026-Q1"),
    (12, date(2026, 11, 30), "FY2026-Q4"),
])
def test_the_quarter_of_a_day(first_month: int, day: date, period: str) -> None:
    assert FiscalCalendar(first_month).period_of(day) == period


@pytest.mark.parametrize(("first_month", "period", "start", "end"), [
    (1, "FY2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
    (1, "FY2024-Q1", date(2024, 1, 1), date(2024, 3, 31)),
    (2, "FY2027-Q1", date(2026, 2, 1), date(2026, 4, 30)),
    (2, "FY2027-Q4", date(2026, 11, 1), date(2027, 1, 31)),
    (11, "FY2025-Q1", date(2024, 11, 1), date(2025, 1, 31)),
    (11, "FY2024-Q2", date(2024, 2, 1), date(2024, 4, 30)),  # leap February
])
def test_a_periods_days(first_month: int, period: str, start: date, end: date) -> None:
    assert FiscalCalendar(first_month).bounds(period) == (start, end)


@given(st.integers(1, 12), st.dates(date(2000, 1, 1), date(2090, 12, 31)))
def test_every_day_lies_in_its_period_and_periods_follow_each_other(
    first_month: int, day: date
) -> None:
    calendar = FiscalCalendar(first_month)
    period = calendar.period_of(day)
    start, end = calendar.bounds(period)
    assert start <= day <= end
    assert calendar.period_of(start) == calendar.period_of(end) == period
    assert calendar.period_of(start - timedelta(days=1)) != period
    assert calendar.period_of(end + timedelta(days=1)) != period
    year, quarter = parse_period(period)
    # The fiscal year ends in the calendar year it is named after.
    last_of_year = calendar.bounds(f"FY{year}-Q4")[1]
    assert last_of_year.year == year
    assert 88 <= (end - start).days <= 91 and quarter in (1, 2, 3, 4)


def test_bad_settings_and_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="1-12"):
        FiscalCalendar(13)
    for bad in ("2026-Q1", "FY2026-Q5", "FY26-Q1", "fy2026-q1"):
        with pytest.raises(ValueError, match="FY2027-Q1"):
            parse_period(bad)


def test_close_dates_as_states_hold_them() -> None:
    calendar = FiscalCalendar(2)
    assert period_of_close_date("2026-02-01", calendar) == "FY2027-Q1"
    assert period_of_close_date("2026-02-01T10:00:00Z", calendar) == "FY2027-Q1"
    assert period_of_close_date(None, calendar) is None
    assert period_of_close_date("soon", calendar) is None
