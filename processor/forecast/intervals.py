"""Stage intervals as a warehouse rebuilds them from ``forecast.stage-history``.

This is the contract the stage-history records are held to: a consumer that
upserts every record on ``record_id`` (the latest delivery wins), drops the
retracted ones and orders the rest by ``event_order`` must get each opportunity's
exact stage intervals, whatever order and however often the stream delivered
them. ``deploy/warehouse`` holds the same logic in SQL; the tests hold this
Python version against intervals computed straight from the CRM history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas import StageHistoryRecord

ENTERING = frozenset({"created", "stage_changed", "restored"})
"""Transitions that start an interval; ``deleted`` only ends one, and
``category_changed`` happens within one."""


@dataclass(frozen=True, slots=True)
class Interval:
    opportunity_id: str
    stage: str
    entered_ms: int
    exited_ms: int | None
    """None: the opportunity is still in this stage."""

    @property
    def seconds(self) -> int | None:
        return None if self.exited_ms is None else (self.exited_ms - self.entered_ms) // 1000


def upserted(records: Iterable[StageHistoryRecord]) -> list[StageHistoryRecord]:
    """What a keyed upsert sink holds: the last delivery of each record id,
    retracted ones removed."""
    latest: dict[str, StageHistoryRecord] = {}
    for record in records:
        latest[record.record_id] = record
    return [r for r in latest.values() if not r.retracted]


def rebuild(records: Iterable[StageHistoryRecord]) -> dict[str, list[Interval]]:
    """Opportunity id -> its stage intervals in event-time order."""
    by_opportunity: dict[str, list[StageHistoryRecord]] = {}
    for record in upserted(records):
        if record.transition != "category_changed":
            by_opportunity.setdefault(record.opportunity_id, []).append(record)
    out: dict[str, list[Interval]] = {}
    for opportunity_id, items in by_opportunity.items():
        items.sort(key=lambda r: (r.event_order, r.source_event_id))
        intervals: list[Interval] = []
        for record, following in zip(items, [*items[1:], None], strict=True):
            if record.transition in ENTERING and record.new_stage is not None:
                exited = None if following is None else _ms(following)
                intervals.append(Interval(opportunity_id, record.new_stage, _ms(record), exited))
        out[opportunity_id] = intervals
    return out


def _ms(record: StageHistoryRecord) -> int:
    return int(record.transitioned_at.timestamp() * 1000)
