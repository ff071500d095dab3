"""Time arithmetic on epoch milliseconds and ISO dates.

The core keeps times as integers because it compares them per event; dates
stay ISO strings, which compare correctly as text and cost nothing to keep.
There is deliberately no ``now()`` here: callers pass time in.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
_SEQ_BITS = 20
_SEQ_MASK = (1 << _SEQ_BITS) - 1


def order_stamp(occurred_ms: int, sequence: int, event_id: str) -> int:
    """One integer that orders changes: event time first, then the source's
    sequence (or a stable hash of the event id), so that every worker and every
    delivery order agree on which of two changes is newer."""
    tiebreak = sequence if sequence > 0 else zlib.crc32(event_id.encode())
    return (occurred_ms << _SEQ_BITS) | (tiebreak & _SEQ_MASK)


def stamp_ms(stamp: int) -> int:
    return stamp >> _SEQ_BITS


def to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@lru_cache(maxsize=4096)
def _iso_of_day(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def iso_day(ms: int) -> str:
    return _iso_of_day(ms // DAY_MS)


@lru_cache(maxsize=16384)
def day_start_ms(iso: str) -> int:
    return to_ms(datetime.fromisoformat(iso).replace(tzinfo=UTC))


def days_between(earlier_iso: str, later_iso: str) -> int:
    return (date.fromisoformat(later_iso) - date.fromisoformat(earlier_iso)).days


@lru_cache(maxsize=4096)
def add_days(iso: str, days: int) -> str:
    return (date.fromisoformat(iso) + timedelta(days=days)).isoformat()


def whole_days(ms: int) -> int:
    return ms // DAY_MS


class Days:
    """Calendar days in the time zone the team works in.

    A close date, a meeting date and "today" are days on the team's calendar:
    counted in UTC, a deal closing on March 31 in New York would read as past
    at 8 pm that day. UTC keeps the integer fast path; another zone converts
    (DST included) and caches each date's start."""

    __slots__ = ("day_start_ms", "iso_day", "zone")

    def __init__(self, zone_name: str = "UTC") -> None:
        if zone_name == "UTC":
            self.zone: tzinfo = UTC
            self.iso_day: Callable[[int], str] = iso_day
            self.day_start_ms: Callable[[str], int] = day_start_ms
            return
        zone = self.zone = ZoneInfo(zone_name)

        def local_iso_day(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, zone).date().isoformat()

        @lru_cache(maxsize=16384)
        def local_day_start_ms(iso: str) -> int:
            return to_ms(datetime.fromisoformat(iso).replace(tzinfo=zone))

        self.iso_day = local_iso_day
        self.day_start_ms = local_day_start_ms
