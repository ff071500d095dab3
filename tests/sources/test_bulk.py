"""Bulk exports: rows as full upserts, column names from any CRM, file
readers that keep line numbers and bytes, and the Kafka row envelope."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.sources import bulk
from processor.sources.base import DecodeResult, InputError, Reject
from processor.sources.mapping import FieldMappings
from schemas.change import OpportunityChange

from .conftest import PAYLOADS

Run = Callable[[Any], DecodeResult]
EXPORTED = datetime(2024, 5, 3, tzinfo=UTC)


def row_change(row: dict[str, Any], mappings: FieldMappings | None = None) -> OpportunityChange:
    return bulk.normalize_row(
        row, export_id="exp-7", exported_at=EXPORTED, mappings=mappings or FieldMappings()
    )


def row_error(row: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(InputError) as caught:
        row_change(row)
    return caught.value.reason, str(caught.value)


def test_salesforce_columns_make_a_full_upsert_with_empty_cells_cleared() -> None:
    change = row_change(
        {
            "Id": "006A",
            "StageName": "Proposal/Price Quote",
            "Amount": "120000",
            "CloseDate": "2024-09-30",
            "NextStep": "",
            "Description": "not mapped, dropped",
            "LastModifiedDate": "2024-05-01T10:00:00.000+0000",
            "IsDeleted": "false",
            "attributes": {"type": "Opportunity", "url": "/services/data/v60.0/..."},
        }
    )

    assert change == OpportunityChange(
        event_id="bulk:exp-7:006A",
        source="bulk",
        opportunity_id="006A",
        occurred_at=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        op="upsert",
        full=True,
        fields={"stage": "Proposal/Price Quote", "amount": 120000.0, "close_date": "2024-09-30"},
        nulled_fields=["next_step"],
    )


def test_hubspot_object_with_properties_and_ms_modification_time() -> None:
    change = row_change(
        {
            "id": "184",
            "properties": {
                "dealname": "Umbrella",
                "closedate": "1727654400000",
                "hs_lastmodifieddate": "1714557600000",
                "hs_object_id": "184",
            },
            "archived": False,
        }
    )

    assert (change.opportunity_id, change.occurred_at, change.fields, change.op) == (
        "184",
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        {"name": "Umbrella", "close_date": "2024-09-30"},
        "upsert",
    )


def test_canonical_columns_and_the_export_time_when_no_modification_column() -> None:
    change = row_change({"opportunity_id": "o-1", "stage": "Discovery", "metrics": " 3x "})

    assert (change.occurred_at, change.fields) == (
        EXPORTED,
        {"stage": "Discovery", "metrics": "3x"},
    )


def test_column_precedence_bulk_then_salesforce_then_hubspot_then_canonical() -> None:
    mappings = FieldMappings.with_overrides(
        {"bulk": {"Amount": "arr"}, "salesforce": {"pipeline": "sf_pipeline"}}
    )

    change = row_change({"Id": "1", "Amount": "5", "pipeline": "renewals", "stage": "X"}, mappings)

    assert change.fields == {"arr": "5", "sf_pipeline": "renewals", "stage": "X"}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"SystemModstamp": "2024-05-02T00:00:00Z", "LastModifiedDate": "2024-05-01T00:00:00Z"},
         datetime(2024, 5, 2, tzinfo=UTC)),
        ({"SystemModstamp": "", "LastModifiedDate": "2024-05-01T00:00:00Z"},
         datetime(2024, 5, 1, tzinfo=UTC)),
        ({"updated_at": "2024-05-01T02:00:00+02:00"}, datetime(2024, 5, 1, tzinfo=UTC)),
        ({"updated_at": "2024-05-01T00:00:00"}, datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_modification_columns(row: dict[str, Any], expected: datetime) -> None:
    assert row_change({"Id": "1", **row}).occurred_at == expected


def test_naive_export_time_is_utc() -> None:
    change = bulk.normalize_row(
        {"Id": "1"}, export_id="e", exported_at=datetime(2024, 5, 3), mappings=FieldMappings()
    )

    assert change.occurred_at == EXPORTED


@pytest.mark.parametrize(
    "row",
    [
        {"IsDeleted": "true"},
        {"IsDeleted": "TRUE"},
        {"is_deleted": "1"},
        {"archived": True},
        {"IsDeleted": "false", "archived": "yes"},
    ],
)
def test_deleted_or_archived_rows_are_deletes(row: dict[str, Any]) -> None:
    change = row_change({"Id": "1", "StageName": "Closed Lost", **row})

    assert (change.op, change.full, change.fields, change.event_id) == (
        "delete",
        False,
        {},
        "bulk:exp-7:1",
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"Id": "", "hs_object_id": 42}, "42"),
        ({"hs_object_id": "7", "opportunity_id": "x"}, "7"),
        ({"id": " 9 "}, "9"),
    ],
)
def test_id_columns(row: dict[str, Any], expected: str) -> None:
    assert row_change(row).opportunity_id == expected


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"Name": "x"}, "Id / hs_object_id / opportunity_id / id: the row has none of these id "
         "columns filled"),
        ({"Id": "1", "IsDeleted": "maybe"}, "IsDeleted: expected true or false, got 'maybe'"),
        ({"Id": "1", "SystemModstamp": "yesterday"}, "SystemModstamp: 'yesterday' is not an "
         "ISO-8601 timestamp"),
        ({"Id": "1", "Amount": "12k"}, "'Amount': field 'amount': '12k' is not a number"),
        ({"Id": True}, "Id: expected an id (string or integer), got bool True"),
    ],
)
def test_row_violations_name_the_column(row: dict[str, Any], message: str) -> None:
    assert row_error(row) == ("schema_violation", message)


# ---- files --------------------------------------------------------------------------


def test_read_csv_yields_rows_and_rejects_with_line_numbers() -> None:
    items = list(bulk.read_csv(PAYLOADS / "bulk_export.csv"))

    assert [line for line, _ in items] == [2, 4, 5, 6, 7, 9]
    first = items[0][1]
    assert isinstance(first, dict)
    assert first["NextStep"] == "Send MSA, then pricing"
    assert first["Description"] == "Multi-line\ndescription"
    assert [(line, item) for line, item in items if isinstance(item, Reject)] == [
        (6, Reject("schema_violation", "line 6: 4 cells where the header has 11 columns",
                   b"006Dn000004ZKd0IAW,Too,few,cells")),
        (7, Reject("schema_violation", "line 7: not CSV: ',' expected after '\"'",
                   b'"broken"quote,x,x,x,x,x,x,x,x,x,x')),
    ]


def test_read_changes_of_a_csv_keeps_the_original_bytes_of_each_row() -> None:
    results = list(
        bulk.read_changes(
            PAYLOADS / "bulk_export.csv",
            export_id="e1",
            exported_at=EXPORTED,
            mappings=FieldMappings(),
        )
    )

    line, raw, first = results[0]
    assert (line, raw.endswith(b'"Multi-line\ndescription",2024-05-01T10:00:00.000+0000,false'))\
        == (2, True)
    assert isinstance(first, OpportunityChange)
    assert first.fields == {
        "name": "Acme Corp - Platform Expansion",
        "stage": "Proposal/Price Quote",
        "amount": 120000.0,
        "close_date": "2024-09-30",
        "owner_id": "005Dn000001AbCdIAK",
        "next_step": "Send MSA, then pricing",
        "champion": "Dana Whitfield",
    }
    summary = [
        (line, item.op if isinstance(item, OpportunityChange) else (item.reason, item.error))
        for line, _, item in results
    ]
    assert summary == [
        (2, "upsert"),
        (4, "delete"),
        (5, ("schema_violation", "line 5: 'Amount': field 'amount': 'abc' is not a number")),
        (6, ("schema_violation", "line 6: 4 cells where the header has 11 columns")),
        (7, ("schema_violation", "line 7: not CSV: ',' expected after '\"'")),
        (9, ("schema_violation", "line 9: Id / hs_object_id / opportunity_id / id: the row has "
             "none of these id columns filled")),
    ]


def test_read_csv_strips_a_bom_and_rejects_undecodable_rows(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbfId,Name\r\n1,Caf\xc3\xa9\r\n2,Caf\xe9\r\n")

    items = list(bulk.read_csv(path))

    assert items == [
        (2, {"Id": "1", "Name": "Café"}),
        (3, Reject("schema_violation", "line 3: not valid utf-8 text", b"2,Caf\xe9")),
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [(b"Id,Name,Id", "line 1: the header repeats column 'Id'"),
     (b"Id,,Name", "line 1: the header has an empty column name")],
)
def test_a_bad_header_rejects_the_file(tmp_path: Path, header: bytes, message: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(header + b"\n1,2,3\n")

    assert list(bulk.read_csv(path)) == [(1, Reject("schema_violation", message, header))]


def test_read_jsonl() -> None:
    items = list(bulk.read_jsonl(PAYLOADS / "bulk_export.jsonl"))

    assert [line for line, _ in items] == [1, 2, 3, 4, 6]
    assert items[2] == (
        3,
        Reject("malformed_json", "line 3: not JSON: invalid literal, expected 'null': line 1 "
               "column 1 (char 0)", b"not json"),
    )
    assert items[3] == (
        4,
        Reject("schema_violation", "line 4: expected a JSON object (one row), got list",
               b"[1, 2]"),
    )
    assert items[4] == (6, {"hs_object_id": 18420399300, "dealname": "Gone", "archived": "true"})


def test_read_changes_of_json_lines() -> None:
    results = list(
        bulk.read_changes(
            PAYLOADS / "bulk_export.jsonl",
            export_id="e1",
            exported_at=EXPORTED,
            mappings=FieldMappings(),
        )
    )

    changes = [item for _, _, item in results if isinstance(item, OpportunityChange)]
    assert [(c.opportunity_id, c.op, c.fields, c.nulled_fields) for c in changes] == [
        ("18420399216", "upsert", {"name": "Umbrella upsell", "stage": "contractsent",
                                   "amount": 64000.0, "close_date": "2024-06-30",
                                   "owner_id": "4817231", "contact_count": 3}, []),
        ("deal-4411", "upsert", {"stage": "Discovery", "amount": 18000.0},
         ["next_meeting_date"]),
        ("18420399300", "delete", {}, []),
    ]


# ---- Kafka envelope ------------------------------------------------------------------


def test_row_envelope_through_decode(run: Run) -> None:
    envelope = {
        "export_id": "nightly-2024-05-03",
        "exported_at": "2024-05-03T00:00:00Z",
        "row": {"Id": "006A", "StageName": "Discovery", "Amount": ""},
    }

    result = run([envelope, envelope | {"exported_at": "soon"}, envelope | {"row": []}])

    assert result.changes == [
        OpportunityChange(
            event_id="bulk:nightly-2024-05-03:006A",
            source="bulk",
            opportunity_id="006A",
            occurred_at=EXPORTED,
            op="upsert",
            full=True,
            fields={"stage": "Discovery"},
            nulled_fields=["amount"],
        )
    ]
    assert [(r.reason, r.error) for r in result.rejects] == [
        ("schema_violation", "[1] exported_at: 'soon' is not an ISO-8601 timestamp"),
        ("schema_violation", "[2] row: Input should be a valid dictionary, got list []"),
    ]
    assert result.rejects[0].raw == orjson.dumps(envelope | {"exported_at": "soon"})
