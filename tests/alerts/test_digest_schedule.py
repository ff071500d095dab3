"""The weekly digest schedule: run instants and periods in a time zone,
across DST changes and date lines."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from processor.alerts.digest_schedule import WEEKDAYS, WeeklySchedule


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


MONDAY_8_UTC = WeeklySchedule(WEEKDAYS.index("mon"), time(8, 0), UTC)


def test_the_latest_run_is_at_or_before_now() -> None:
    # 2026-03-09 is a Monday.
    assert MONDAY_8_UTC.latest(utc(2026, 3, 9, 8, 0)) == utc(2026, 3, 9, 8, 0)
    assert MONDAY_8_UTC.latest(utc(2026, 3, 9, 7, 59, 59)) == utc(2026, 3, 2, 8, 0)
    assert MONDAY_8_UTC.latest(utc(2026, 3, 15, 23, 0)) == utc(2026, 3, 9, 8, 0)
    assert MONDAY_8_UTC.next(utc(2026, 3, 9, 8, 0)) == utc(2026, 3, 16, 8, 0)
    assert MONDAY_8_UTC.period(utc(2026, 3, 12)) == date(2026, 3, 9)


def test_one_period_for_the_whole_week_between_two_runs() -> None:
    start = utc(2026, 3, 9, 8, 0)
    periods = {MONDAY_8_UTC.period(start + timedelta(minutes=m)) for m in range(0, 7 * 1440, 37)}
    assert periods == {date(2026, 3, 9)}
    assert MONDAY_8_UTC.period(start + timedelta(days=7)) == date(2026, 3, 16)


def test_the_period_is_the_local_date_of_the_run() -> None:
    tokyo = WeeklySchedule(0, time(8, 0), ZoneInfo("Asia/Tokyo"))
    # Sunday 23:30 UTC is Monday 08:30 in Tokyo: this Monday's run is due.
    now = utc(2026, 3, 8, 23, 30)
    assert tokyo.latest(now) == utc(2026, 3, 8, 23, 0)
    assert tokyo.period(now) == date(2026, 3, 9)
    honolulu = WeeklySchedule(4, time(17, 0), ZoneInfo("Pacific/Honolulu"))
    # Saturday 02:30 UTC is Friday 16:30 in Honolulu: the run is still ahead.
    assert honolulu.period(utc(2026, 3, 14, 2, 30)) == date(2026, 3, 6)
    assert honolulu.period(utc(2026, 3, 14, 3, 0)) == date(2026, 3, 13)


def test_the_local_time_holds_across_dst() -> None:
    paris = WeeklySchedule(0, time(8, 0), ZoneInfo("Europe/Paris"))
    # Clocks go forward on 2026-03-29: 08:00 Paris is 07:00 UTC before, 06:00 after.
    assert paris.latest(utc(2026, 3, 23, 12)) == utc(2026, 3, 23, 7, 0)
    assert paris.next(utc(2026, 3, 23, 12)) == utc(2026, 3, 30, 6, 0)
    assert paris.next(utc(2026, 3, 30, 6, 0)) == utc(2026, 4, 6, 6, 0)
    # And back on 2026-10-25.
    assert paris.next(utc(2026, 10, 20)) == utc(2026, 10, 26, 7, 0)


@pytest.mark.parametrize(("at", "expected"), [
    # 2026-03-08 (a Sunday): 02:00-03:00 does not exist in New York; 02:30
    # runs at the instant 02:30 would have been, which reads 03:30 EDT.
    (time(2, 30), utc(2026, 3, 8, 7, 30)),
    (time(3, 30), utc(2026, 3, 8, 7, 30)),
    (time(1, 59), utc(2026, 3, 8, 6, 59)),
])
def test_a_wall_clock_time_that_spring_forward_skips_still_runs(
    at: time, expected: datetime
) -> None:
    schedule = WeeklySchedule(6, at, ZoneInfo("America/New_York"))
    assert schedule.next(utc(2026, 3, 7)) == expected
    assert schedule.period(expected) == date(2026, 3, 8)
    assert schedule.period(expected - timedelta(seconds=1)) == date(2026, 3, 1)


def test_a_wall_clock_time_that_occurs_twice_runs_once_at_the_first() -> None:
    # 2026-11-01 (a Sunday): 01:00-02:00 happens twice in New York.
    schedule = WeeklySchedule(6, time(1, 30), ZoneInfo("America/New_York"))
    first = utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert schedule.next(utc(2026, 10, 31)) == first
    second = utc(2026, 11, 1, 6, 30)  # 01:30 EST, the same wall time again
    assert schedule.latest(second) == first
    assert schedule.period(second) == schedule.period(first) == date(2026, 11, 1)


def test_seconds_are_honoured() -> None:
    schedule = WeeklySchedule(0, time(8, 0, 30), UTC)
    assert schedule.period(utc(2026, 3, 9, 8, 0, 29)) == date(2026, 3, 2)
    assert schedule.period(utc(2026, 3, 9, 8, 0, 30)) == date(2026, 3, 9)
