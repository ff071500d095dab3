"""The replay runner: feed recorded messages, sweep at the end, collect.

It is the stream's state agent without Kafka: same decoding, same engine, same
dead-letter records. Files are read in order; the core makes the result
independent of that order, so mixed or unsorted files are fine.

Messages are taken in batches (``BATCH``): one call decodes a batch and one
applies its changes, so crossing into the native decoder and engine is paid
per batch, not per message. Records come out as JSON bytes and reach the
sinks as they are; pydantic records are built only for what a caller keeps
(``keep``: the report and the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from processor.replay.engines import Applied, EngineName, engine_for
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


_ALERTS: TypeAdapter[list[Alert | Resolution]] = TypeAdapter(
    list[Annotated[Alert | Resolution, Field(discriminator="kind")]])
_HISTORY: TypeAdapter[list[StageHistoryRecord]] = TypeAdapter(list[StageHistoryRecord])
_COMMANDS: TypeAdapter[list[CloseOutCommand]] = TypeAdapter(list[CloseOutCommand])
_RESOLUTION = b'"kind":"resolution"'

Pending = tuple[bytes, bytes | None, str, int | None]
"""(message bytes, its change's JSON when it is already one, source, offset)."""


class Replay:
    """Accumulates state across fed messages; ``finish`` sweeps and returns.

    ``received_at`` stamps dead letters: the shell passes the wall clock in,
    because the core and the runner never read it themselves. ``engine``:
    the native engine, or the Python reference (see
    ``processor.replay.engines``)."""

    BATCH = 1024
    """Messages per decode and apply call."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        sink: Sink | None = None,
        keep: bool = True,
        received_at: datetime,
        engine: EngineName = "native",
    ) -> None:
        self.mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))
        self.decoder = Decoder(self.mappings)  # as the stream's ingest decodes
        self.engine = engine_for(engine, rules, self.decoder)
        self.sink: Sink = sink or NullSink()
        self.keep = keep
        self._result = ReplayResult(rules=rules, as_of_ms=0, states={})
        self._received_at = received_at
        self._pending: list[Pending] = []

    # ---- input ------------------------------------------------------------
    def feed(self, raw: bytes, source: str, offset: int | None = None) -> None:
        self._pending.append((raw, None, source, offset))
        if len(self._pending) >= self.BATCH:
            self.flush()

    def apply(
        self, change: OpportunityChange, raw: bytes, source: str, offset: int | None
    ) -> None:
        """A change already normalized (a bulk-export row); ``raw`` is what
        a dead letter for it carries."""
        self._pending.append((raw, change.to_json(), source, offset))
        if len(self._pending) >= self.BATCH:
            self.flush()

    def feed_file(
        self, path: Path, on_progress: Callable[[int], None] | None = None, *,
        export: bool = False,
    ) -> None:
        """JSON lines (one message a line, any supported format, mixed), or a
        bulk export (see ``recorded.is_export``)."""
        self._result.inputs.append(str(path))
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
            if isinstance(change_or_reject, Reject):
                self.flush()  # dead letters stay in input order
                self._result.messages += 1
                self._dead_letter(change_or_reject, str(path), line)
            else:
                self.apply(change_or_reject, row_bytes, str(path), line)
            if on_progress:
                on_progress(len(row_bytes) + 1)

    def flush(self) -> None:
        """Decodes and applies what is pending (``feed`` does it per batch):
        runs of messages in one ``feed`` call each, runs of changes already
        normalized in one ``apply`` call each, in input order."""
        pending, self._pending = self._pending, []
        start = 0
        while start < len(pending):
            normalized = pending[start][1] is not None
            end = start + 1
            while end < len(pending) and (pending[end][1] is not None) == normalized:
                end += 1
            run = pending[start:end]
            if normalized:
                self._apply_run(run)
            else:
                self._feed_run(run)
            start = end

    def _feed_run(self, run: list[Pending]) -> None:
        fed = self.engine.feed([raw for raw, _, _, _ in run])
        result = self._result
        result.messages += len(run)
        result.ignored += fed.ignored
        result.changes += fed.changes
        for index, reject in fed.rejects:
            _, _, source, offset = run[index]
            self._dead_letter(reject, source, offset)
        self._collect(fed.applied)

    def _apply_run(self, run: list[Pending]) -> None:
        applied = self.engine.apply([change for _, change, _, _ in run if change is not None])
        result = self._result
        result.messages += len(run)
        result.changes += len(run) - len(applied.rejects)
        for index, error in applied.rejects:
            raw, _, source, offset = run[index]
            self._dead_letter(Reject("processing_error", error, raw), source, offset)
        self._collect(applied)

    # ---- reading state ----------------------------------------------------
    @property
    def result(self) -> ReplayResult:
        """What was fed so far (pending messages applied first), without the
        final sweep ``finish`` adds; with the states when ``keep``."""
        self.flush()
        if self.keep:
            self._result.states = self.states
        return self._result

    @property
    def states(self) -> dict[str, OpportunityState]:
        """Every opportunity's state now, in first-seen order. Built on each
        call from the native engine's states: for reports and tests."""
        self.flush()
        return {state.opportunity_id: state for state in self.engine.states()}

    def state(self, opportunity_id: str) -> OpportunityState | None:
        self.flush()
        return self.engine.state(opportunity_id)

    # ---- end --------------------------------------------------------------
    def finish(self, as_of_ms: int | None = None) -> ReplayResult:
        """Sweeps every opportunity at ``as_of`` (default: the last event time),
        so that time-driven rules fire as they would have at that moment."""
        self.flush()
        result = self._result
        span = self.engine.event_span()
        if span is not None:
            result.first_event_ms, result.last_event_ms = span
        now = as_of_ms if as_of_ms is not None else (result.last_event_ms or 0)
        result.as_of_ms = now
        self._collect(self.engine.sweep(now))
        self.sink.close()
        if self.keep:
            result.states = self.states
        return result

    # ---- internals --------------------------------------------------------
    def _collect(self, applied: Applied) -> None:
        sink, result = self.sink, self._result
        resolutions = sum(1 for raw in applied.alerts if _RESOLUTION in raw)
        result.resolutions += resolutions
        result.alerts_raised += len(applied.alerts) - resolutions
        for kind, records in (("alerts", applied.alerts), ("history", applied.history),
                              ("commands", applied.commands)):
            for raw in records:
                sink.emit_json(kind, raw)
        if self.keep:
            result.alerts.extend(_records(_ALERTS, applied.alerts))
            result.history.extend(_records(_HISTORY, applied.history))
            result.commands.extend(_records(_COMMANDS, applied.commands))

    def _dead_letter(self, reject: Reject, source: str, offset: int | None) -> None:
        record = DeadLetter.of(reject.reason, reject.error, source=source, original=reject.raw,
                               received_at=self._received_at, offset=offset)
        self.sink.emit("dead_letters", record)
        self._result.dead_letters.append(record)


def _records(adapter: TypeAdapter[list[Any]], raws: list[bytes]) -> list[Any]:
    return adapter.validate_json(b"[" + b",".join(raws) + b"]") if raws else []
