"""Fiscal quarters: which period a close date falls in, and a period's days.

A fiscal year starts on the first day of a configurable month and is named
after the calendar year in which it *ends*: with a February start, February
2026 to January 2027 is FY2027, and FY2027-Q1 is February to April 2026.
With a January start the fiscal year is the calendar year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_PERIOD = re.compile(r"^FY(\d{4})-Q([1-4])$")


@dataclass(frozen=True)
class FiscalCalendar:
    first_month: int = 1
    """1 (January) to 12 (December): the month the fiscal year starts."""

    def __post_init__(self) -> None:
        if not 1 <= self.first_month <= 12:
            raise ValueError(f"fiscal year first month must be 1-12, not {self.first_month}")

    def year_of(self, day: date) -> int:
        """The fiscal year (named by the calendar year it ends in) of ``day``."""
        if self.first_month == 1 or day.month < self.first_month:
            return day.year
        return day.year + 1

    def period_of(self, day: date) -> str:
        quarter = (day.month - self.first_month) % 12 // 3 + 1
        return f"FY{self.year_of(day)}-Q{quarter}"

    def bounds(self, period: str) -> tuple[date, date]:
        """First and last day of ``period`` ("FY2027-Q1")."""
        year, quarter = parse_period(period)
        # Named by the year it ends in: it began the calendar year before,
        # except when it starts in January.
        start_year = year if self.first_month == 1 else year - 1
        months = start_year * 12 + (self.first_month - 1) + (quarter - 1) * 3
        first = date(months // 12, months % 12 + 1, 1)
        after = months + 3
        last = date(after // 12, after % 12 + 1, 1) - timedelta(days=1)
        return first, last


def parse_period(period: str) -> tuple[int, int]:
    """(fiscal year, quarter) of "FY2027-Q1"; ValueError for anything else."""
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"not a fiscal quarter like FY2027-Q1: {period!r}")
    return int(match.group(1)), int(match.group(2))


def period_of_close_date(value: object, calendar: FiscalCalendar) -> str | None:
    """The period of an opportunity's close date (an ISO ``YYYY-MM-DD``
    string, as states hold dates), None when it has none or it is not a date."""
    if not isinstance(value, str):
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return None
    return calendar.period_of(day)
