"""When the weekly hygiene digest goes out: a weekday and a wall-clock time
in the team's time zone.

The run is identified by its period, the local date of the scheduled run,
which is also the digest's ``period_start``: a partition that already sent a
period never sends it again, and one that missed the moment (down, or
rebalancing) sends it as soon as it can, so a week is neither skipped nor
sent twice. Only the latest period is caught up: digests for weeks already
superseded would tell nobody anything.

Wall-clock times that a DST change skips run at the same instant as the time
that far past the skipped hour's start (02:30 on a spring-forward night runs
at 03:30); a time that occurs twice runs at its first occurrence. Pure: time
comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WeeklySchedule:
    weekday: int
    """0 = Monday ... 6 = Sunday."""
    at: time
    zone: tzinfo

    def run_on(self, day: date) -> datetime:
        """The run instant (UTC) of the scheduled run on local ``day``."""
        local = datetime.combine(day, self.at.replace(tzinfo=None, fold=0), tzinfo=self.zone)
        return local.astimezone(UTC)

    def _latest(self, now: datetime) -> tuple[date, datetime]:
        local_day = now.astimezone(self.zone).date()
        day = local_day - timedelta(days=(local_day.weekday() - self.weekday) % 7)
        run = self.run_on(day)
        if run > now:
            day -= timedelta(days=7)
            run = self.run_on(day)
        return day, run

    def latest(self, now: datetime) -> datetime:
        """The latest run instant (UTC) at or before ``now`` (aware)."""
        return self._latest(now)[1]

    def next(self, now: datetime) -> datetime:
        """The first run instant (UTC) after ``now``."""
        return self.run_on(self._latest(now)[0] + timedelta(days=7))

    def period(self, now: datetime) -> date:
        """The period due at ``now``: the local date of the latest run."""
        return self._latest(now)[0]
