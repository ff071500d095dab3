"""Recorded input files: what `hygiene replay` reads and `hygiene publish`
sends, so that a file gives the same result offline and through the stream."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from processor.sources import bulk
from processor.sources.base import Reject


def is_export(path: Path, flagged: bool) -> bool:
    """A CSV file is always a bulk export; a JSON-lines export must be named
    one (``--export``), since its rows (one opportunity each) look like
    nothing else a message can be."""
    return flagged or path.suffix.lower() == ".csv"


def lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a JSON-lines event file, numbered from 1, without
    their line ends: one message each, in any supported format."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            raw = line.rstrip(b"\r\n")
            if raw.strip():
                yield number, raw


def messages(
    path: Path, *, export: bool = False, export_id: str | None = None,
    exported_at: datetime | None = None,
) -> Iterator[tuple[int, bytes | Reject]]:
    """One file as the stream's input messages, with their line numbers.

    Event lines go as they are (the stream detects their format, as replay
    does). Export rows go in their Kafka form, stamped with the export's id
    and time (by default the file's name and when it was written, as replay
    stamps them). A row the file itself cannot give (broken CSV, a line that
    is no JSON object) comes as a ``Reject`` with its bytes, for the
    dead-letter topic."""
    if not is_export(path, export):
        yield from lines(path)
        return
    default_id, default_at = bulk.identity(path)
    export_id = export_id or default_id
    exported_at = exported_at or default_at
    for number, _raw, row in bulk.read_rows(path):
        if isinstance(row, Reject):
            yield number, row
        else:
            yield number, bulk.row_message(row, export_id=export_id, exported_at=exported_at)
