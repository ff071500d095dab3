"""What the demo shows: counters fed by the output topics, drawn either as a
rich Live layout (a terminal) or as plain lines (CI, a pipe, a log file).

The state is only ever touched from the demo's event loop; the views are
called from the same loop, so no locking is needed.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from pydantic import TypeAdapter, ValidationError
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from schemas import Alert, CloseOutCommand, Resolution, StageHistoryRecord

Phase = Literal["starting", "streaming", "catching up", "sweeping", "done", "stopping"]
OutputKind = Literal["alerts", "history", "commands", "dead_letters"]

_ALERT_OR_RESOLUTION: TypeAdapter[Alert | Resolution] = TypeAdapter(Alert | Resolution)
_LATEST = 50
_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


@dataclass
class RuleCounts:
    raised: set[str] = field(default_factory=set)
    resolved: set[str] = field(default_factory=set)

    @property
    def open(self) -> int:
        return len(self.raised - self.resolved)


@dataclass
class DemoState:
    """Everything the view draws. Counts are of distinct ids where the
    outputs have them, so an at-least-once redelivery never inflates them."""

    total_messages: int
    window_start: datetime
    window_end: datetime
    endpoints: str = ""
    phase: Phase = "starting"
    produced: int = 0
    simulated_at: datetime | None = None
    started_at: float = field(default_factory=time.monotonic)
    alerts: int = 0
    resolutions: int = 0
    history: int = 0
    commands: int = 0
    dead_letters: int = 0
    sweeps: int = 0
    undecodable: int = 0
    by_rule: dict[str, RuleCounts] = field(default_factory=dict)
    latest_alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=_LATEST))
    latest_history: deque[StageHistoryRecord] = field(
        default_factory=lambda: deque(maxlen=_LATEST)
    )
    latest_commands: deque[CloseOutCommand] = field(default_factory=lambda: deque(maxlen=_LATEST))
    names: Callable[[str], str | None] = field(default=lambda opportunity_id: None)
    """Opportunity id -> name, for stage-history records (which carry no name)."""
    _seen: dict[OutputKind, set[str]] = field(default_factory=dict)

    def record(self, kind: OutputKind, value: bytes) -> Alert | StageHistoryRecord | None:
        """Counts one output message; returns an alert or a fresh stage
        transition for views that print them as they come."""
        seen = self._seen.setdefault(kind, set())
        try:
            if kind == "alerts":
                return self._alert(_ALERT_OR_RESOLUTION.validate_json(value))
            if kind == "history":
                record = StageHistoryRecord.model_validate_json(value)
                if record.record_id in seen:
                    return None  # a correction or retraction of a record already counted
                seen.add(record.record_id)
                self.history += 1
                if record.retracted:
                    return None
                self.latest_history.append(record)
                return record
            if kind == "commands":
                command = CloseOutCommand.model_validate_json(value)
                if command.command_id not in seen:
                    seen.add(command.command_id)
                    self.commands += 1
                    self.latest_commands.append(command)
                return None
        except ValidationError:
            self.undecodable += 1
            return None
        self.dead_letters += 1
        return None

    def _alert(self, record: Alert | Resolution) -> Alert | None:
        counts = self.by_rule.setdefault(record.rule_id, RuleCounts())
        if isinstance(record, Resolution):
            if record.alert_id not in counts.resolved:
                counts.resolved.add(record.alert_id)
                self.resolutions += 1
            return None
        if record.alert_id in counts.raised:
            return None
        counts.raised.add(record.alert_id)
        self.alerts += 1
        self.latest_alerts.append(record)
        return record

    @property
    def open_alerts(self) -> int:
        return sum(c.open for c in self.by_rule.values())

    @property
    def fraction(self) -> float:
        return self.produced / self.total_messages if self.total_messages else 1.0


class View(Protocol):
    def __enter__(self) -> View: ...

    def __exit__(self, *exc: object) -> None: ...

    def refresh(self) -> None: ...

    def on_output(self, record: Alert | StageHistoryRecord | None) -> None: ...

    def note(self, message: str) -> None: ...


# ---- terminal ---------------------------------------------------------------
class LiveView:
    """A full-screen-height rich Live layout, redrawn a few times a second."""

    def __init__(self, console: Console, state: DemoState) -> None:
        self.console = console
        self.state = state
        self._notes: deque[str] = deque(maxlen=3)
        self._live = Live(
            console=console, auto_refresh=False, screen=False, transient=False,
            redirect_stdout=True, redirect_stderr=True, vertical_overflow="crop",
        )

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        self.refresh()
        return self

    def __exit__(self, *exc: object) -> None:
        # Leaves the last frame on screen; a terminal that is gone (SIGHUP)
        # must not keep stdout and stderr redirected into the Live.
        try:
            self.refresh()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                self._live.__exit__(None, None, None)

    def note(self, message: str) -> None:
        self._notes.append(message)
        self.refresh()

    def on_output(self, record: Alert | StageHistoryRecord | None) -> None:
        return None

    def refresh(self) -> None:
        self._live.update(self.render(), refresh=True)

    def render(self) -> RenderableType:
        height = max(20, self.console.size.height - 1)
        rows = max(3, (height - 12) // 2)
        layout = Layout()
        layout.split_column(
            Layout(self._header(), name="header", size=5),
            Layout(name="body"),
            Layout(self._footer(), name="footer", size=1),
        )
        layout["body"].split_row(
            Layout(self._counters(), name="counters",
                   size=max(40, min(50, self.console.width // 3))),
            Layout(name="latest"),
        )
        layout["latest"].split_column(
            Layout(self._alerts_panel(rows)), Layout(self._history_panel(rows))
        )
        return _Sized(layout, height)

    def _header(self) -> RenderableType:
        s = self.state
        wide = self.console.width >= 140
        bar = ProgressBar(total=max(1, s.total_messages), completed=s.produced,
                          width=30 if wide else 12)
        simulated = f"{s.simulated_at:%Y-%m-%d %H:%M}" if s.simulated_at else "-"
        line = Table.grid(padding=(0, 1))
        line.add_row(
            Text(s.phase, style=_phase_style(s.phase), no_wrap=True), bar,
            Text(f"{s.produced:,}/{s.total_messages:,} CRM messages", style="bold",
                 no_wrap=True),
            Text(f"{'simulated clock' if wide else 'CRM time'} {simulated} UTC", style="cyan",
                 no_wrap=True),
            Text(f"{time.monotonic() - s.started_at:.0f}s", style="dim", no_wrap=True),
        )
        notes = Text(" | ".join(self._notes) or " ", style="dim", overflow="ellipsis",
                     no_wrap=True)
        return Panel(Group(Text(s.endpoints, style="dim", no_wrap=True, overflow="ellipsis"),
                           line, notes),
                     title="[bold]revops-hygiene demo[/bold]", title_align="left")

    def _counters(self) -> RenderableType:
        s = self.state
        outputs = Table.grid(padding=(0, 1))
        outputs.add_column(style="bold")
        outputs.add_column(justify="right")
        outputs.add_row("crm.events (in)", f"{s.produced:,}")
        outputs.add_row("hygiene.alerts", f"{s.alerts:,} raised")
        outputs.add_row("", f"{s.resolutions:,} resolved")
        outputs.add_row("", f"{s.open_alerts:,} unresolved")
        outputs.add_row("forecast.stage-history", f"{s.history:,}")
        outputs.add_row("crm.commands", f"{s.commands:,}")
        outputs.add_row("hygiene.dead-letter", f"{s.dead_letters:,}")
        outputs.add_row("sweeps", f"{s.sweeps:,}")
        rules = Table(box=None, padding=(0, 1), show_edge=False, expand=True)
        rules.add_column("rule", no_wrap=True, overflow="ellipsis")
        rules.add_column("raised", justify="right", min_width=6, no_wrap=True)
        rules.add_column("unresolved", justify="right", min_width=10, no_wrap=True)
        for rule, counts in sorted(s.by_rule.items(), key=lambda kv: -len(kv[1].raised)):
            rules.add_row(rule, str(len(counts.raised)), str(counts.open))
        return Panel(Group(outputs, Text(""), rules), title="outputs", title_align="left")

    def _alerts_panel(self, rows: int) -> RenderableType:
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        table.add_column("opportunity", ratio=3, no_wrap=True, overflow="ellipsis")
        table.add_column("owner", ratio=1, min_width=8, no_wrap=True, overflow="ellipsis")
        table.add_column("amount", justify="right", no_wrap=True)
        table.add_column("rule", ratio=2, min_width=16, no_wrap=True, overflow="ellipsis")
        table.add_column("message", ratio=5, no_wrap=True, overflow="ellipsis")
        for alert in reversed(list(self.state.latest_alerts)[-rows:]):
            table.add_row(
                alert.opportunity_name or alert.opportunity_id,
                alert.owner_id or "-",
                _amount(alert.amount, alert.currency),
                Text(alert.rule_id, style=_SEVERITY_STYLE.get(alert.severity, "")),
                alert.message,
            )
        return Panel(table, title="latest alerts (hygiene.alerts)", title_align="left")

    def _history_panel(self, rows: int) -> RenderableType:
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        table.add_column("when (CRM)", no_wrap=True)
        table.add_column("opportunity", ratio=3, no_wrap=True, overflow="ellipsis")
        table.add_column("transition", ratio=3, no_wrap=True, overflow="ellipsis")
        table.add_column("amount", justify="right", no_wrap=True)
        table.add_column("owner", ratio=1, min_width=8, no_wrap=True, overflow="ellipsis")
        for record in reversed(list(self.state.latest_history)[-rows:]):
            table.add_row(
                f"{record.transitioned_at:%Y-%m-%d}",
                self.state.names(record.opportunity_id) or record.opportunity_id,
                _transition(record),
                _amount(record.amount, record.currency),
                record.owner_id or "-",
            )
        return Panel(table, title="latest stage transitions (forecast.stage-history)",
                     title_align="left")

    def _footer(self) -> RenderableType:
        return Text(" Ctrl-C stops the worker, Kafka and Redis", style="dim")


class _Sized:
    """Renders a Layout at a fixed height (a Layout alone fills the screen)."""

    def __init__(self, layout: Layout, height: int) -> None:
        self.layout = layout
        self.height = height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.layout.__rich_console__(console, options.update(height=self.height))


# ---- plain lines --------------------------------------------------------------
class PlainView:
    """One line per alert and a status line every few seconds: readable in a
    CI log, greppable, and never a cursor movement."""

    def __init__(self, console: Console, state: DemoState, *, every: float = 2.0) -> None:
        self.console = console
        self.state = state
        self.every = every
        self._last = 0.0
        self._last_line = ""

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        self._status(force=True)

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def on_output(self, record: Alert | StageHistoryRecord | None) -> None:
        if isinstance(record, Alert):
            self.console.print(
                f"alert   {record.rule_id:<22} {record.opportunity_name or record.opportunity_id}"
                f" (owner {record.owner_id or '-'}, {_amount(record.amount, record.currency)}):"
                f" {record.message}",
                highlight=False, markup=False,
            )

    def refresh(self) -> None:
        self._status(force=False)

    def _status(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        s = self.state
        simulated = f"{s.simulated_at:%Y-%m-%d}" if s.simulated_at else "-"
        line = (
            f"status  {s.phase}: CRM messages {s.produced}/{s.total_messages} (CRM time "
            f"{simulated}) | alerts {s.alerts} raised, {s.resolutions} resolved | "
            f"stage-history {s.history} | commands {s.commands} | dead letters "
            f"{s.dead_letters} | sweeps {s.sweeps}"
        )
        if line != self._last_line or force:
            self.console.print(line, highlight=False, markup=False)
            self._last_line = line
        self._last = now


# ---- helpers ------------------------------------------------------------------
def _amount(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    return f"{amount:,.0f} {currency or ''}".rstrip()


def _transition(record: StageHistoryRecord) -> Text:
    text = Text()
    if record.transition == "category_changed":
        text.append(f"{record.new_stage}: forecast ", style="dim")
        text.append(record.forecast_category or "(none)", style="bold")
        return text
    text.append(record.previous_stage or "(new)", style="dim")
    text.append(" -> ")
    style = "green" if record.is_won else "red" if record.is_closed else "bold"
    text.append(record.new_stage or "(deleted)", style=style)
    if record.transition in ("deleted", "restored"):
        text.append(f"  {record.transition}", style="magenta")
    return text


def _phase_style(phase: Phase) -> str:
    return {"streaming": "bold green", "done": "bold cyan", "stopping": "bold red"}.get(
        phase, "bold yellow"
    )
