"""Generic change events: the format any CRM can produce."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from processor.sources.base import DecodeResult
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings
from schemas.change import OpportunityChange
from tests.sources.decoding import only_change, only_reject

Run = Callable[[Any], DecodeResult]


def generic(**extra: Any) -> dict[str, Any]:
    return {
        "source": "pipedrive",
        "event_id": "pd-1",
        "opportunity_id": "deal-1",
        "occurred_at": "2024-05-01T10:00:00Z",
        "op": "upsert",
        **extra,
    }



def test_recorded_events(run: Run, payload: Callable[[str], bytes]) -> None:
    result = run(payload("generic_events.json"))

    assert result.changes == [
        OpportunityChange(
            event_id="pd-77102",
            source="generic:pipedrive",
            opportunity_id="deal-4411",
            occurred_at=datetime(2024, 5, 1, 7, 15, tzinfo=UTC),
            sequence=4,
            op="upsert",
            fields={
                "stage": "Discovery",
                "amount": 18000.0,
                "close_date": "2024-07-31",
                "identify_pain": "Manual quoting takes 3 days",
            },
            nulled_fields=["next_step", "metrics"],
        ),
        OpportunityChange(
            event_id="pd-77103",
            source="generic:pipedrive",
            opportunity_id="deal-4411",
            occurred_at=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
            op="activity",
            contact_ids=["person-12", "13"],
        ),
        OpportunityChange(
            event_id="cl-1",
            source="generic:close",
            opportunity_id="oppo_Z9",
            occurred_at=datetime(2024, 5, 2, 8, 0, tzinfo=UTC),  # naive: taken as UTC
            op="delete",
        ),
        OpportunityChange(
            event_id="cl-2",
            source="generic:close",
            opportunity_id="oppo_Z9",
            occurred_at=datetime(2024, 5, 3, 8, 0, tzinfo=UTC),
            op="restore",
            fields={"stage": "Proposal"},
            full=True,
        ),
    ]


def test_unknown_fields_are_kept_and_the_generic_mapping_renames() -> None:
    mappings = FieldMappings.with_overrides({"generic": {"value": "amount"}})
    event = generic(fields={"value": "12.5", "Budget__c": "approved"}, nulled_fields=["value"])

    change = only_change(decode(orjson.dumps(event), mappings))

    assert (change.fields, change.nulled_fields) == ({"Budget__c": "approved"}, ["amount"])


def test_epoch_ms_and_numeric_ids_are_accepted(run: Run) -> None:
    change = only_change(run(generic(occurred_at=1714557600000, event_id=9, opportunity_id=77)))

    assert (change.occurred_at, change.event_id, change.opportunity_id) == (
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "9",
        "77",
    )


def test_a_single_bad_event_is_dead_lettered_with_the_whole_message(run: Run) -> None:
    raw = orjson.dumps(generic(op="merge"))

    result = run(raw)

    assert [(r.reason, r.raw) for r in result.rejects] == [("schema_violation", raw)]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            generic(feilds={"stage": "x"}),
            "feilds: Extra inputs are not permitted, got dict {'stage': 'x'}",
        ),
        (
            generic(op="merge"),
            "op: Input should be 'upsert', 'delete', 'restore' or 'activity', got str 'merge'",
        ),
        (generic(occurred_at="last tuesday"), "occurred_at: 'last tuesday' is not an ISO-8601 "
         "timestamp"),
        (generic(occurred_at=None), "occurred_at: expected an ISO-8601 timestamp, got null"),
        (generic(source=""), "source: String should have at least 1 character, got str ''"),
        (generic(opportunity_id=" "), "opportunity_id: expected an id (string or integer), "
         "got str ' '"),
        (generic(full="yes"), "full: Input should be a valid boolean, got str 'yes'"),
        (generic(sequence="3"), "sequence: Input should be a valid integer, got str '3'"),
        (generic(fields=["stage"]), "fields: Input should be a valid dictionary, got list "
         "['stage']"),
        (generic(fields={"amount": {"value": 1}}), "fields: field 'amount': expected a single "
         "value, got dict"),
        (generic(fields={"close_date": "31/07/2024"}), "fields: field 'close_date': "
         "'31/07/2024' is not a date"),
        (generic(contact_ids=["c1", None]), "contact_ids[1]: expected an id (string or "
         "integer), got null"),
        (
            {k: v for k, v in generic().items() if k != "event_id"} | {"opportunity_id": "o"},
            "event_id: Field required",
        ),
    ],
)
def test_violations_name_the_key(run: Run, event: dict[str, Any], message: str) -> None:
    assert only_reject(run(event)) == ("schema_violation", message)


@pytest.mark.parametrize(
    ("value", "close_date"),
    [
        ("2024-07-31", "2024-07-31"),
        (" 2024-07-31 ", "2024-07-31"),
        ("2024-07-31T23:30:00-02:00", "2024-08-01"),  # a moment: its UTC day
        ("2024-07-31T10:00:00Z", "2024-07-31"),
        ("1722384000000", "2024-07-31"),  # epoch ms as text (HubSpot)
        (1722384000000, "2024-07-31"),
        (19935, "2024-07-31"),  # epoch days (Pub/Sub, Kafka Connect Date)
        (19935.0, "2024-07-31"),
        ("", None),
    ],
)
def test_date_coercion(run: Run, value: Any, close_date: str | None) -> None:
    change = only_change(run(generic(fields={"close_date": value})))

    if close_date is None:
        assert (change.fields, change.nulled_fields) == ({}, ["close_date"])
    else:
        assert change.fields == {"close_date": close_date}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"close_date": True}, "fields: field 'close_date': True is not a date"),
        ({"close_date": "2024-13-01"}, "fields: field 'close_date': '2024-13-01' is not a date"),
        ({"amount": "inf"}, "fields: field 'amount': 'inf' is not a number"),
        ({"amount": False}, "fields: field 'amount': False is not a number"),
        ({"": 1}, "fields[''] (the key): String should have at least 1 character, got str ''"),
    ],
)
def test_values_that_cannot_be_coerced(run: Run, fields: dict[str, Any], message: str) -> None:
    assert only_reject(run(generic(fields=fields))) == ("schema_violation", message)
