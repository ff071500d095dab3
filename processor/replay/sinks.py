"""Where replay output goes: memory (for the report and tests) or JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Protocol

from schemas import Record

OUTPUT_FILES = {
    "alerts": "alerts.jsonl",
    "history": "stage-history.jsonl",
    "commands": "commands.jsonl",
    "dead_letters": "dead-letter.jsonl",
}


class Sink(Protocol):
    def emit(self, kind: str, record: Record) -> None: ...

    def emit_json(self, kind: str, raw: bytes) -> None:
        """A record already in its JSON form (what the engines return)."""

    def close(self) -> None: ...


class NullSink:
    """Counts nothing, writes nothing: for benchmarks of the core itself."""

    def emit(self, kind: str, record: Record) -> None:
        return None

    def emit_json(self, kind: str, raw: bytes) -> None:
        return None

    def close(self) -> None:
        return None


class JsonLinesSink:
    """One JSON-lines file per output, named as the stream's topics are."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._files: dict[str, IO[bytes]] = {
            kind: (directory / name).open("wb") for kind, name in OUTPUT_FILES.items()
        }

    def emit(self, kind: str, record: Record) -> None:
        self._files[kind].write(record.model_dump_json().encode() + b"\n")

    def emit_json(self, kind: str, raw: bytes) -> None:
        handle = self._files[kind]
        handle.write(raw)
        handle.write(b"\n")

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
