"""The replay runner: feed recorded messages, sweep at the end, collect.

It is the stream's state agent without Kafka: same decoding, same engine, same
dead-letter records. Files are read in order; the core makes the result
independent of that order, so mixed or unsorted files are fine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.core.outcome import Outcome
from processor.replay.sinks import NullSink, Sink
from processor.rules.config import RuleSet
from processor.sources import bulk, recorded
from processor.sources.base import Reject
from processor.sources.mapping import FieldMappings
from processor.sources.native import Decoder
from schemas import (
    Alert,
    CloseOutCommand,
    DeadLetter,
    OpportunityChange,
    OpportunityState,
    Resolution,
    StageHistoryRecord,
)


@dataclass
class ReplayResult:
    rules: RuleSet
    as_of_ms: int
    states: dict[str, OpportunityState]
    alerts: list[Alert | Resolution] = field(default_factory=list)
    history: list[StageHistoryRecord] = field(default_factory=list)
    commands: list[CloseOutCommand] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    messages: int = 0
    changes: int = 0
    ignored: int = 0
    alerts_raised: int = 0
    resolutions: int = 0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    inputs: list[str] = field(default_factory=list)


class Replay:
    """Accumulates state across fed messages; ``finish`` sweeps and returns.

    ``received_at`` stamps dead letters: the shell passes the wall clock in,
    because the core and the runner never read it themselves."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        sink: Sink | None = None,
        keep: bool = True,
        received_at: datetime,
    ) -> None:
        self.engine = Engine(rules)
        self.mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))
        self.decoder = Decoder(self.mappings)
        self.sink: Sink = sink or NullSink()
        self.keep = keep
        self.states: dict[str, OpportunityState] = {}
        self.result = ReplayResult(rules=rules, as_of_ms=0, states=self.states)
        self._received_at = received_at

    # ---- input ------------------------------------------------------------
    def feed(self, raw: bytes, source: str, offset: int | None = None) -> None:
        self.result.messages += 1
        decoded = self.decoder.decode(raw)  # as the stream's ingest decodes
        self.result.ignored += decoded.ignored
        for reject in decoded.rejects:
            self._dead_letter(reject, source, offset)
        for change in decoded.records():
            self.apply(change, raw, source, offset)

    def apply(
        self, change: OpportunityChange, raw: bytes, source: str, offset: int | None
    ) -> None:
        try:
            state, outcome = self.engine.apply(self.states.get(change.opportunity_id), change)
        except Exception as exc:  # never stop the replay; keep the input for a re-drive
            self._dead_letter(Reject("processing_error", f"{type(exc).__name__}: {exc}", raw),
                              source, offset)
            return
        self.states[change.opportunity_id] = state
        self.result.changes += 1
        occurred = to_ms(change.occurred_at)
        result = self.result
        if result.last_event_ms is None or occurred > result.last_event_ms:
            result.last_event_ms = occurred
        if result.first_event_ms is None or occurred < result.first_event_ms:
            result.first_event_ms = occurred
        self._collect(outcome)

    def feed_file(
        self, path: Path, on_progress: Callable[[int], None] | None = None, *,
        export: bool = False,
    ) -> None:
        """JSON lines (one message a line, any supported format, mixed), or a
        bulk export (see ``recorded.is_export``)."""
        self.result.inputs.append(str(path))
        if recorded.is_export(path, export):
            self._feed_export(path, on_progress)
            return
        for line_number, raw in recorded.lines(path):
            self.feed(raw, str(path), line_number)
            if on_progress:
                on_progress(len(raw) + 1)

    def _feed_export(self, path: Path, on_progress: Callable[[int], None] | None) -> None:
        """Each row becomes a full upsert stamped with the file's time, which
        the engine merges with what it holds field by field (newer wins)."""
        export_id, exported_at = bulk.identity(path)
        for line, row_bytes, change_or_reject in bulk.read_changes(
            path, export_id=export_id, exported_at=exported_at, mappings=self.mappings
        ):
            self.result.messages += 1
            if isinstance(change_or_reject, Reject):
                self._dead_letter(change_or_reject, str(path), line)
            else:
                self.apply(change_or_reject, row_bytes, str(path), line)
            if on_progress:
                on_progress(len(row_bytes) + 1)

    # ---- end --------------------------------------------------------------
    def finish(self, as_of_ms: int | None = None) -> ReplayResult:
        """Sweeps every opportunity at ``as_of`` (default: the last event time),
        so that time-driven rules fire as they would have at that moment."""
        now = as_of_ms if as_of_ms is not None else (self.result.last_event_ms or 0)
        self.result.as_of_ms = now
        for state in self.states.values():
            self._collect(self.engine.sweep(state, now))
        self.sink.close()
        return self.result

    # ---- internals --------------------------------------------------------
    def _collect(self, outcome: Outcome) -> None:
        sink, result, keep = self.sink, self.result, self.keep
        for alert in outcome.alerts:
            sink.emit("alerts", alert)
            if alert.kind == "alert":
                result.alerts_raised += 1
            else:
                result.resolutions += 1
        for record in outcome.history:
            sink.emit("history", record)
        for command in outcome.commands:
            sink.emit("commands", command)
        if keep:
            result.alerts.extend(outcome.alerts)
            result.history.extend(outcome.history)
            result.commands.extend(outcome.commands)

    def _dead_letter(self, reject: Reject, source: str, offset: int | None) -> None:
        record = DeadLetter.of(reject.reason, reject.error, source=source, original=reject.raw,
                               received_at=self._received_at, offset=offset)
        self.sink.emit("dead_letters", record)
        self.result.dead_letters.append(record)

