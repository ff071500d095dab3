"""Bulk sync exports: one opportunity a row, for CRMs without CDC.

A row becomes one full upsert (``full=True``, every mapped column, empty cells
as cleared fields) rather than a diff against what the processor holds: the
core already compares field by field with last-writer-wins, so an unchanged
value changes nothing, and a row stays a pure function of itself (a re-read
export, replayed in any order, gives the same result). The row's own
modification time is its event time, so an export taken after a newer CDC
change cannot overwrite it.

Columns may be canonical names, Salesforce field names or HubSpot property
names (``FieldMappings.bulk_columns``); other columns are dropped. Rows shaped
like HubSpot's CRM API objects (``{"id": ..., "properties": {...}}``) are
flattened first.

On Kafka a row travels as ``{"export_id": ..., "exported_at": ISO, "row": {...}}``;
files are read with ``read_csv`` / ``read_jsonl``, which keep line numbers
and the original bytes so that a bad row can be dead-lettered on its own.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from typing_extensions import TypedDict

from processor.sources.base import (
    STRICT,
    Envelope,
    InputError,
    Reject,
    Timestamp,
    VendorId,
    as_id,
    build_change,
    parse_timestamp,
    values_of,
    violation,
)
from processor.sources.mapping import (
    BULK_CONTROL_COLUMNS,
    BULK_DELETED_COLUMNS,
    BULK_ID_COLUMNS,
    BULK_MODIFIED_COLUMNS,
    FieldMappings,
)
from schemas.change import OpportunityChange

SOURCE: Final = "bulk"
_TRUE: Final = frozenset({"true", "1", "yes", "y", "t"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "f", ""})
_BOM: Final = b"\xef\xbb\xbf"

Row = dict[str, Any]
Line = tuple[int, Row | Reject]
"""(line number, the row or why it could not be read)."""
RawRow = tuple[int, bytes, Row | Reject]
"""(line number, the row's original bytes, the row or why it could not be read)."""


class RowEnvelope(TypedDict):
    """The Kafka form of one exported row."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    export_id: VendorId
    exported_at: Timestamp
    row: dict[str, Any]


_ENVELOPE: Final = Envelope(RowEnvelope)


def is_bulk(obj: dict[str, Any]) -> bool:
    return "row" in obj and "export_id" in obj


def normalize(envelope: dict[str, Any], mappings: FieldMappings) -> list[OpportunityChange]:
    valid = _ENVELOPE.check(envelope)
    return [
        normalize_row(
            valid["row"],
            export_id=valid["export_id"],
            exported_at=valid["exported_at"],
            mappings=mappings,
        )
    ]


def normalize_row(
    row: Mapping[str, Any], *, export_id: str, exported_at: datetime, mappings: FieldMappings
) -> OpportunityChange:
    """One exported row as a full upsert, or a delete when the row says the
    record is deleted or archived. Raises ``InputError`` naming the column."""
    values = _spread_properties(row)
    opportunity_id = _opportunity_id(values)
    occurred_at = _modified_at(values) or parse_timestamp(exported_at, "exported_at")
    deleted = _deleted(values)
    fields: dict[str, Any] = {}
    nulled: list[str] = []
    if not deleted:
        fields, nulled = values_of(values, mappings.bulk_columns, BULK_CONTROL_COLUMNS)
    return build_change(
        event_id=f"bulk:{export_id}:{opportunity_id}",
        source=SOURCE,
        opportunity_id=opportunity_id,
        occurred_at=occurred_at,
        op="delete" if deleted else "upsert",
        full=not deleted,
        fields=fields,
        nulled_fields=nulled,
    )


def _spread_properties(row: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = row.get("properties")
    if type(properties) is not dict:
        return row
    spread = {k: v for k, v in row.items() if k != "properties"}
    spread.update(properties)
    return spread


def _opportunity_id(row: Mapping[str, Any]) -> str:
    for column in BULK_ID_COLUMNS:
        value = row.get(column)
        if value is not None and value != "":
            return as_id(value, column)
    raise violation(" / ".join(BULK_ID_COLUMNS), "the row has none of these id columns filled")


def _modified_at(row: Mapping[str, Any]) -> datetime | None:
    for column in BULK_MODIFIED_COLUMNS:
        value = row.get(column)
        if value is not None and value != "":
            return parse_timestamp(value, column)
    return None


def _deleted(row: Mapping[str, Any]) -> bool:
    return any(column in row and as_bool(row[column], column) for column in BULK_DELETED_COLUMNS)


def as_bool(value: Any, column: str) -> bool:
    """Exports spell booleans every way; an unknown spelling is an error
    rather than a guess, because guessing wrong deletes an opportunity."""
    if value is None or type(value) is bool:
        return bool(value)
    if type(value) is int and value in (0, 1):
        return bool(value)
    if type(value) is str:
        text = value.strip().casefold()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise violation(column, f"expected true or false, got {value!r}")


# ---- files ----------------------------------------------------------------


def read_csv(path: str | Path, *, encoding: str = "utf-8") -> Iterator[Line]:
    """Rows of a CSV export keyed by the header, with the line each starts on.
    A row that is not valid CSV or has the wrong number of cells comes as a
    ``Reject`` holding its original bytes, and reading goes on."""
    for line, _raw, item in _csv_rows(Path(path), encoding):
        yield line, item


def read_jsonl(path: str | Path) -> Iterator[Line]:
    """Rows of a JSON-lines export (one JSON object a line); blank lines are
    skipped, anything else that is not an object comes as a ``Reject``."""
    for line, _raw, item in _jsonl_rows(Path(path)):
        yield line, item


def read_rows(path: str | Path, *, encoding: str = "utf-8") -> Iterator[RawRow]:
    """Each row of an export file with its line and original bytes: CSV when
    the name ends in .csv, JSON lines otherwise."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _csv_rows(path, encoding)
    return _jsonl_rows(path)


def identity(path: str | Path) -> tuple[str, datetime]:
    """An export file's id and time when nobody gives them: its name and
    when it was written. Replay and publish agree on this, so a file
    published to the stream ends where its replay does."""
    path = Path(path)
    return path.stem, datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def read_changes(
    path: str | Path, *, export_id: str, exported_at: datetime, mappings: FieldMappings
) -> Iterator[tuple[int, bytes, OpportunityChange | Reject]]:
    """Each row of an export file with its original bytes, normalized."""
    return changes(read_rows(path), export_id, exported_at, mappings)


def row_message(row: Row, *, export_id: str, exported_at: datetime) -> bytes:
    """One row in its Kafka form (``RowEnvelope``)."""
    return orjson.dumps({"export_id": export_id, "exported_at": exported_at, "row": row})



def changes(
    rows: Iterable[RawRow],
    export_id: str,
    exported_at: datetime,
    mappings: FieldMappings,
) -> Iterator[tuple[int, bytes, OpportunityChange | Reject]]:
    for line, raw, item in rows:
        if isinstance(item, Reject):
            yield line, raw, item
            continue
        try:
            change = normalize_row(
                item, export_id=export_id, exported_at=exported_at, mappings=mappings
            )
        except InputError as exc:
            yield line, raw, Reject(exc.reason, f"line {line}: {exc}", raw)
        else:
            yield line, raw, change


def _csv_rows(path: Path, encoding: str) -> Iterator[RawRow]:
    """Reads bytes and decodes line by line, so that the original bytes of
    every row are at hand and one badly encoded row rejects only itself."""
    with path.open("rb") as handle:
        consumed: list[bytes] = []
        undecodable: list[int] = []

        def lines() -> Iterator[str]:
            for number, data in enumerate(handle, start=1):
                if number == 1 and data.startswith(_BOM):
                    data = data[len(_BOM):]
                consumed.append(data)
                try:
                    yield data.decode(encoding)
                except UnicodeDecodeError:
                    undecodable.append(number)
                    yield data.decode(encoding, errors="replace")

        reader = csv.reader(lines(), strict=True)
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            consumed.clear()
            undecodable.clear()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _bad(start, consumed, f"not CSV: {exc}")
                continue
            if not cells:
                continue
            problem = _row_problem(cells, header, undecodable, encoding)
            if problem:
                yield _bad(start, consumed, problem)
                if header is None:
                    return
                continue
            if header is None:
                header = cells
                continue
            yield start, b"".join(consumed).rstrip(b"\r\n"), dict(zip(header, cells, strict=True))


def _bad(line: int, consumed: list[bytes], problem: str) -> tuple[int, bytes, Reject]:
    raw = b"".join(consumed).rstrip(b"\r\n")
    return line, raw, Reject("schema_violation", f"line {line}: {problem}", raw)


def _row_problem(
    cells: list[str], header: list[str] | None, undecodable: list[int], encoding: str
) -> str | None:
    if undecodable:
        return f"not valid {encoding} text"
    if header is None:
        return _header_problem(cells)
    if len(cells) != len(header):
        return f"{len(cells)} cells where the header has {len(header)} columns"
    return None


def _header_problem(header: list[str]) -> str | None:
    seen: set[str] = set()
    for column in header:
        if not column.strip():
            return "the header has an empty column name"
        if column in seen:
            return f"the header repeats column {column!r}"
        seen.add(column)
    return None


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    with path.open("rb") as handle:
        for line, text in enumerate(handle, start=1):
            raw = text.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield line, raw, Reject("malformed_json", f"line {line}: not JSON: {exc}", raw)
                continue
            if type(row) is not dict:
                problem = f"expected a JSON object (one row), got {type(row).__name__}"
                yield line, raw, Reject("schema_violation", f"line {line}: {problem}", raw)
                continue
            yield line, raw, row
