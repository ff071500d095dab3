"""detect.decode: message-level rejects, per-element decoding of arrays, mixed
formats, and the fast record construction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from processor.sources import detect, salesforce
from processor.sources.base import DecodeResult, Reject
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings
from schemas.change import OpportunityChange

from .conftest import PAYLOADS

Run = Callable[[Any], DecodeResult]

SHAPES = (
    "a Salesforce change event (ChangeEventHeader), a HubSpot webhook event "
    "(subscriptionType), a bulk row envelope (export_id, row) or a generic change event "
    "(event_id, opportunity_id)"
)

GENERIC = {
    "source": "x",
    "event_id": "e1",
    "opportunity_id": "o1",
    "occurred_at": "2024-05-01T00:00:00Z",
    "op": "activity",
}
HUBSPOT = {
    "eventId": 1,
    "portalId": 2,
    "occurredAt": 1714521600000,
    "subscriptionType": "deal.deletion",
    "objectId": 3,
}
HUBSPOT_UNMAPPED = HUBSPOT | {
    "subscriptionType": "deal.propertyChange",
    "propertyName": "hs_analytics_source",
    "propertyValue": "DIRECT",
}
BULK = {"export_id": "x1", "exported_at": "2024-05-01T00:00:00Z", "row": {"Id": "006B"}}


def sf_update(**fields: Any) -> dict[str, Any]:
    header = {
        "entityName": "Opportunity",
        "recordIds": ["006A"],
        "changeType": "UPDATE",
        "commitTimestamp": 1714521600000,
        "sequenceNumber": 1,
        "transactionKey": "t1",
    }
    return {"ChangeEventHeader": header, **fields}


def test_oversized_is_checked_before_parsing(mappings: FieldMappings) -> None:
    raw = b"{" * 11

    result = decode(raw, mappings, max_bytes=10)

    assert (result.changes, result.rejects) == (
        [],
        [Reject("oversized", "message is 11 bytes, over the 10-byte limit", raw)],
    )


def test_a_message_at_the_limit_is_decoded(mappings: FieldMappings) -> None:
    raw = orjson.dumps(GENERIC)

    assert len(decode(raw, mappings, max_bytes=len(raw)).changes) == 1


@pytest.mark.parametrize(
    ("raw", "reason", "error"),
    [
        (b'{"a": ', "malformed_json", "not JSON: unexpected end of data: line 1 column 7 "
         "(char 6)"),
        (b"\xff\xfe", "malformed_json", "not JSON: str is not valid UTF-8: surrogates not "
         "allowed: line 1 column 1 (char 0)"),
        (b"[]", "unknown_format", "an empty JSON array: no events"),
        (b"42", "unknown_format", f"expected a JSON object, got int; expected {SHAPES}"),
        (b'{"id": 1, "type": "deal"}', "unknown_format",
         f"no recognizable format (keys: id, type); expected {SHAPES}"),
        (b"{}", "unknown_format", f"no recognizable format (keys: none); expected {SHAPES}"),
    ],
)
def test_message_level_rejects_keep_the_whole_message(
    run: Run, raw: bytes, reason: str, error: str
) -> None:
    result = run(raw)

    assert (result.changes, result.rejects, result.ignored) == (
        [],
        [Reject(reason, error, raw)],  # type: ignore[arg-type]
        0,
    )


def test_unknown_keys_are_listed_up_to_a_limit(run: Run) -> None:
    event = {f"k{i:02}": i for i in range(10)}

    [reject] = run(event).rejects

    assert reject.error == (
        "no recognizable format (keys: k00, k01, k02, k03, k04, k05, k06, k07, ...); "
        f"expected {SHAPES}"
    )


def test_mixed_array_decodes_each_element_on_its_own(run: Run) -> None:
    bad_generic = GENERIC | {"op": "gap"}
    message = [
        sf_update(StageName="Discovery"),
        HUBSPOT,
        "not an event",
        GENERIC,
        HUBSPOT_UNMAPPED,
        {"payload": sf_update(Amount=5)},
        bad_generic,
        BULK,
    ]

    result = run(message)

    assert [(c.source, c.opportunity_id, c.op) for c in result.changes] == [
        ("salesforce", "006A", "upsert"),
        ("hubspot", "3", "delete"),
        ("generic:x", "o1", "activity"),
        ("salesforce", "006A", "upsert"),
        ("bulk", "006B", "upsert"),
    ]
    assert result.rejects == [
        Reject("unknown_format", f"[2] expected a JSON object, got str; expected {SHAPES}",
               b'"not an event"'),
        Reject("schema_violation", "[6] op: Input should be 'upsert', 'delete', 'restore' or "
               "'activity', got str 'gap'", orjson.dumps(bad_generic)),
    ]
    assert result.ignored == 1


def test_salesforce_header_wins_over_other_shapes(run: Run) -> None:
    # A Kafka Connect record that also happens to carry an "event_id" column.
    [change] = run(sf_update(event_id="x", opportunity_id="y")).changes

    assert change.source == "salesforce"


def test_a_payload_key_without_a_header_is_not_salesforce(run: Run) -> None:
    [change] = run(GENERIC | {"fields": {"payload": "text"}}).changes

    assert change.source == "generic:x"


def test_an_unexpected_failure_is_a_processing_error_not_a_crash(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(event: dict[str, Any], mappings: FieldMappings) -> list[OpportunityChange]:
        raise KeyError("surprise")

    monkeypatch.setattr(salesforce, "normalize", broken)

    result = run([sf_update(), GENERIC])

    assert [c.source for c in result.changes] == ["generic:x"]
    assert result.rejects == [
        Reject("processing_error", "[0] KeyError: 'surprise'", orjson.dumps(sf_update()))
    ]


def test_detect_returns_the_event_inside_its_envelope() -> None:
    inner = sf_update()

    found = detect.detect({"channel": "/data/ChangeEvents", "data": {"payload": inner}})

    assert found is not None
    assert found[1] is inner


def test_fast_built_changes_equal_validated_records(mappings: FieldMappings) -> None:
    """build_change skips validation; every change any payload produces must
    be exactly what validation would have produced."""
    changes = [
        change
        for path in sorted(PAYLOADS.glob("*.json"))
        for change in decode(path.read_bytes(), mappings).changes
    ]

    assert len(changes) == 22
    for change in changes:
        validated = OpportunityChange.model_validate_json(change.model_dump_json())
        assert validated == change
        assert validated.model_fields_set == change.model_fields_set
        assert change.occurred_at.utcoffset() is not None
