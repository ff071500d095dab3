"""What one step of the core produces, for the shell to publish."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas import Alert, CloseOutCommand, Resolution, StageHistoryRecord


@dataclass(slots=True)
class Outcome:
    alerts: list[Alert | Resolution] = field(default_factory=list)
    history: list[StageHistoryRecord] = field(default_factory=list)
    commands: list[CloseOutCommand] = field(default_factory=list)
    changed: bool = False
    """The state differs from before: the shell must write it back."""

    def extend(self, other: Outcome) -> None:
        self.alerts.extend(other.alerts)
        self.history.extend(other.history)
        self.commands.extend(other.commands)
        self.changed = self.changed or other.changed

    def __bool__(self) -> bool:
        return bool(self.alerts or self.history or self.commands)
