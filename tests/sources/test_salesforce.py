"""Salesforce CDC: every change type, the envelopes, nulls, and rejects."""

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
Doc = Callable[[str], Any]

OPP = "006Dn000004ZKcXIAW"
OPP2 = "006Dn000004ZKcYIAW"
TASK = "00TDn00000ABCdEMAV"
CONTACT = "003Dn00000Q1xyzIAB"


def expected(**values: Any) -> OpportunityChange:
    values.setdefault("source", "salesforce")
    return OpportunityChange(**values)


def event(
    change_type: str = "UPDATE", entity: str = "Opportunity", **fields: Any
) -> dict[str, Any]:
    """A minimal Pub/Sub-style change event, for tests of one key."""
    header: dict[str, Any] = {
        "entityName": entity,
        "recordIds": [OPP],
        "changeType": change_type,
        "changeOrigin": "",
        "transactionKey": "tx-1",
        "sequenceNumber": 2,
        "commitTimestamp": 1714417112000,
        "commitNumber": 1,
        "commitUser": "005Dn000001AbCdIAK",
        "changedFields": [],
    }
    return {"ChangeEventHeader": header, **fields}


AT = datetime(2024, 4, 29, 18, 58, 32, tzinfo=UTC)



# ---- change types -------------------------------------------------------------


def test_create_in_cometd_wrapper_carries_the_whole_record(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    result = run(payload("sf_opportunity_create_cometd.json"))

    assert result.changes == [
        expected(
            event_id=f"sf:0002b47a-5ab5-0a19-0c5e-6f6ee3a1e0c1:1:{OPP}",
            opportunity_id=OPP,
            occurred_at=AT,
            sequence=1,
            op="upsert",
            full=True,
            fields={
                "account_id": "001Dn00000XYZabIAC",
                "name": "Acme Corp - Platform Expansion",
                "stage": "Prospecting",
                "amount": 120000.0,
                "currency": "USD",
                "close_date": "2024-09-30",
                "probability": 10.0,
                "forecast_category": "Pipeline",
                "owner_id": "005Dn000001AbCdIAK",
                "next_step": "Intro call with VP Eng",
            },
        )
    ]
    assert (result.rejects, result.ignored) == ([], 0)


def test_pubsub_update_keeps_changed_values_and_reads_nulls_from_the_header(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    # Pub/Sub nulls every unchanged field; only nulledFields says what was cleared.
    change = only_change(run(payload("sf_opportunity_update_pubsub.json")))

    assert change == expected(
        event_id=f"sf:00051c5e-9a2e-4f3a-5d8b-2c0f7d1e6a44:3:{OPP}",
        opportunity_id=OPP,
        occurred_at=datetime(2024, 4, 30, 18, 58, 32, tzinfo=UTC),
        sequence=3,
        op="upsert",
        fields={"stage": "Qualification", "amount": 95000.0, "close_date": "2024-10-01"},
        nulled_fields=["next_step"],
    )


def test_kafka_connect_payload_with_two_record_ids_gives_one_change_each(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    result = run(payload("sf_opportunity_update_kafka_connect.json"))

    common: dict[str, Any] = {
        "occurred_at": datetime(2024, 5, 1, 19, 0, tzinfo=UTC),
        "sequence": 7,
        "op": "upsert",
        # No nulledFields key (Streaming API): a null clears. Unmapped
        # (Internal_Score__c) and envelope fields (Id, ReplayId, _ObjectType) are gone.
        "fields": {"owner_id": "005Dn000002XyZwIAK", "champion": "Dana Whitfield (CTO)"},
        "nulled_fields": ["competition"],
    }
    key = "000a50de-05dd-07c4-22fb-44b7f9e72ab5"
    assert result.changes == [
        expected(event_id=f"sf:{key}:7:{OPP}", opportunity_id=OPP, **common),
        expected(event_id=f"sf:{key}:7:{OPP2}", opportunity_id=OPP2, **common),
    ]
    first, second = result.changes
    assert first.fields is not second.fields
    assert first.nulled_fields is not second.nulled_fields


def test_delete_under_payload(run: Run, payload: Callable[[str], bytes]) -> None:
    change = only_change(run(payload("sf_opportunity_delete.json")))

    assert change == expected(
        event_id=f"sf:00067d8c-1f0b-2e1d-aa3c-5b7e1c9d2f10:1:{OPP2}",
        opportunity_id=OPP2,
        occurred_at=datetime(2024, 5, 1, 21, 46, 40, tzinfo=UTC),
        sequence=1,
        op="delete",
    )


def test_undelete_is_a_restore_with_the_whole_record(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    change = only_change(run(payload("sf_opportunity_undelete.json")))

    assert change == expected(
        event_id=f"sf:0006f1aa-77b2-4c0e-9d1e-2a3b4c5d6e7f:1:{OPP2}",
        opportunity_id=OPP2,
        occurred_at=datetime(2024, 5, 2, 21, 46, 40, tzinfo=UTC),
        sequence=1,
        op="restore",
        full=True,
        fields={
            "name": "Globex renewal",
            "stage": "Negotiation/Review",
            "amount": 48000.0,
            "close_date": "2024-06-28",
            "owner_id": "005Dn000001AbCdIAK",
        },
    )


def test_gap_in_streaming_wrapper_carries_no_fields(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    change = only_change(run(payload("sf_gap_update.json")))

    assert change == expected(
        event_id=f"sf:0Mcxx000000000B:1:{OPP}",
        opportunity_id=OPP,
        occurred_at=datetime(2017, 11, 1, 2, 8, 8, 161000, tzinfo=UTC),
        sequence=1,
        op="gap",
        gap_type="GAP_UPDATE",
    )


@pytest.mark.parametrize(
    "change_type", ["GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"]
)
def test_every_gap_type_is_a_gap_even_if_fields_are_present(run: Run, change_type: str) -> None:
    change = only_change(run(event(change_type, StageName="Closed Won")))

    assert (change.op, change.gap_type, change.fields, change.nulled_fields) == (
        "gap",
        change_type,
        {},
        [],
    )


@pytest.mark.parametrize(
    ("change_type", "op", "full"),
    [("CREATE", "upsert", True), ("UPDATE", "upsert", False), ("UNDELETE", "restore", True)],
)
def test_change_types_that_carry_values(run: Run, change_type: str, op: str, full: bool) -> None:
    change = only_change(run(event(change_type, StageName="Discovery")))

    assert (change.op, change.full, change.fields) == (op, full, {"stage": "Discovery"})


# ---- values -----------------------------------------------------------------------


def test_create_treats_nulls_as_cleared_even_from_pubsub(run: Run) -> None:
    message = event("CREATE", StageName="Prospecting", NextStep=None, Amount=None)
    message["ChangeEventHeader"]["nulledFields"] = []

    change = only_change(run(message))

    assert (change.fields, change.nulled_fields) == (
        {"stage": "Prospecting"},
        ["next_step", "amount"],
    )


def test_nulled_field_wins_over_a_value_and_system_or_unmapped_names_are_dropped(
    run: Run,
) -> None:
    message = event(Amount=5.0, StageName="Discovery")
    message["ChangeEventHeader"]["nulledFields"] = ["Amount", "LastModifiedById", "Custom__c"]

    change = only_change(run(message))

    assert (change.fields, change.nulled_fields) == ({"stage": "Discovery"}, ["amount"])


def test_diffed_text_field_is_left_out_because_its_value_is_a_patch(run: Run) -> None:
    message = event(NextStep="@@ -1,3 +1,4 @@\n-a\n+b", StageName="Discovery")
    message["ChangeEventHeader"]["diffFields"] = ["NextStep"]

    change = only_change(run(message))

    assert (change.fields, change.nulled_fields) == ({"stage": "Discovery"}, [])


def test_system_fields_are_dropped_even_when_a_mapping_names_them(
    run: Run,
) -> None:
    mappings = FieldMappings.with_overrides({"salesforce": {"LastModifiedDate": "modified"}})

    result = decode(
        orjson.dumps(event(LastModifiedDate="2024-05-01T00:00:00Z", StageName="Discovery")),
        mappings,
    )

    assert only_change(result).fields == {"stage": "Discovery"}


def test_compound_fields_are_flattened_to_dotted_names_a_mapping_can_use() -> None:
    mappings = FieldMappings.with_overrides(
        {"salesforce": {"Delivery_Address__c.City": "delivery_city"}}
    )
    message = event(Delivery_Address__c={"Street": None, "City": " Oakland "})

    change = only_change(decode(orjson.dumps(message), mappings))

    assert (change.fields, change.nulled_fields) == ({"delivery_city": "Oakland"}, [])


def test_avro_json_unions_are_unwrapped(run: Run) -> None:
    message = event(StageName={"string": "Closed Won"}, Amount={"double": 10.5})

    change = only_change(run(message))

    assert change.fields == {"stage": "Closed Won", "amount": 10.5}


def test_custom_mapping_replaces_and_extends_the_defaults() -> None:
    mappings = FieldMappings.with_overrides(
        {"salesforce": {"Budget_Confirmed__c": "budget_confirmed", "StageName": "sf_stage"}}
    )

    change = only_change(
        decode(orjson.dumps(event(Budget_Confirmed__c=True, StageName="X")), mappings)
    )

    assert change.fields == {"budget_confirmed": True, "sf_stage": "X"}


# ---- activities -------------------------------------------------------------------


def test_task_on_an_opportunity_is_activity_with_the_contact(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    change = only_change(run(payload("sf_task_create.json")))

    assert change == expected(
        event_id=f"sf:0007aa11-2b3c-4d5e-6f70-8192a3b4c5d6:1:{TASK}",
        opportunity_id=OPP,
        occurred_at=datetime(2024, 4, 30, 20, 46, 40, tzinfo=UTC),
        sequence=1,
        op="activity",
        contact_ids=[CONTACT],
    )


def test_event_with_a_lead_as_who_has_no_contact(run: Run) -> None:
    change = only_change(run(event("UPDATE", "Event", WhatId=OPP, WhoId="00QDn000001abcdEAA")))

    assert (change.op, change.opportunity_id, change.contact_ids) == ("activity", OPP, [])


def test_task_update_without_what_id_is_unsupported_and_says_why(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    reason, error = only_reject(run(payload("sf_task_update_no_whatid.json")))

    assert reason == "unsupported_entity"
    assert error == (
        "WhatId: the Task UPDATE carries no WhatId, so it cannot be attributed to an "
        "opportunity (an UPDATE carries only changed fields: enrich the channel with WhatId "
        "and WhoId)"
    )


def test_an_event_on_an_account_is_ignored_not_dead_lettered(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    result = run(payload("sf_event_create_on_account.json"))

    assert (result.changes, result.rejects, result.ignored) == ([], [], 1)


@pytest.mark.parametrize("change_type", ["DELETE", "UNDELETE", "GAP_UPDATE"])
def test_deleted_restored_or_gapped_tasks_are_ignored_not_rejected(
    run: Run, change_type: str
) -> None:
    result = run(event(change_type, "Task"))

    assert (result.changes, result.rejects, result.ignored) == ([], [], 1)


# ---- rejects ------------------------------------------------------------------------


def test_other_entities_are_unsupported(run: Run, payload: Callable[[str], bytes]) -> None:
    assert only_reject(run(payload("sf_account_update.json"))) == (
        "unsupported_entity",
        "ChangeEventHeader.entityName: 'Account' is not handled "
        "(only Opportunity, and Task/Event as activity on an opportunity)",
    )


def test_overflow_with_the_empty_record_id_asks_for_a_resync(
    run: Run, payload: Callable[[str], bytes]
) -> None:
    assert only_reject(run(payload("sf_gap_overflow.json"))) == (
        "unsupported_entity",
        "ChangeEventHeader.recordIds: GAP_OVERFLOW for Opportunity names no single record "
        "(['000000000000000AAA']); it covers every record of the entity, so resync "
        "Opportunity from a bulk export",
    )


def test_wildcard_record_ids_are_skipped_when_real_ids_are_present(run: Run) -> None:
    message = event("GAP_UPDATE")
    message["ChangeEventHeader"]["recordIds"] = ["006*", OPP]

    assert only_change(run(message)).opportunity_id == OPP


def test_bitmap_nulled_fields_cannot_be_read(run: Run) -> None:
    message = event()
    message["ChangeEventHeader"]["nulledFields"] = ["0x400080", "3-0x01"]

    assert only_reject(run(message)) == (
        "schema_violation",
        "ChangeEventHeader.nulledFields: holds Pub/Sub bitmap '0x400080', not field names; "
        "expand the bitmaps in the bridge (ChangeEventHeaderUtility.process_bitmap) before "
        "producing",
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "commitTimestamp",
            "1714417112000",
            "ChangeEventHeader.commitTimestamp: Input should be a valid integer, "
            "got str '1714417112000'",
        ),
        ("sequenceNumber", None, "ChangeEventHeader.sequenceNumber: Field required"),
        ("transactionKey", "", "ChangeEventHeader.transactionKey: String should have at least "
         "1 character, got str ''"),
        ("recordIds", "006A", "ChangeEventHeader.recordIds: Input should be a valid list, "
         "got str '006A'"),
        ("recordIds", [], "ChangeEventHeader.recordIds: expected at least one record id, "
         "got none"),
        (
            "changeType",
            "UPSERT",
            "ChangeEventHeader.changeType: Input should be 'CREATE', 'UPDATE', 'DELETE', "
            "'UNDELETE', 'GAP_CREATE', 'GAP_UPDATE', 'GAP_DELETE', 'GAP_UNDELETE' or "
            "'GAP_OVERFLOW', got str 'UPSERT'",
        ),
        ("entityName", 7, "ChangeEventHeader.entityName: Input should be a valid string, "
         "got int 7"),
    ],
)
def test_header_violations_name_the_key(run: Run, key: str, value: Any, message: str) -> None:
    event_ = event()
    if value is None:
        del event_["ChangeEventHeader"][key]
    else:
        event_["ChangeEventHeader"][key] = value

    assert only_reject(run(event_)) == ("schema_violation", message)


def test_header_that_is_not_an_object(run: Run) -> None:
    assert only_reject(run({"ChangeEventHeader": ["x"]})) == (
        "schema_violation",
        "ChangeEventHeader: Input should be a valid dictionary, got list ['x']",
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"CloseDate": "next quarter"}, "'CloseDate': field 'close_date': 'next quarter' is not "
         "a date"),
        ({"Amount": "lots"}, "'Amount': field 'amount': 'lots' is not a number"),
        ({"Amount": "NaN"}, "'Amount': field 'amount': 'NaN' is not a number"),
        ({"StageName": ["a", "b"]}, "field 'StageName': expected a single value, got list"),
    ],
)
def test_bad_values_name_the_vendor_field(
    run: Run, fields: dict[str, Any], message: str
) -> None:
    assert only_reject(run(event(**fields))) == ("schema_violation", message)


def test_epoch_days_and_epoch_ms_dates(run: Run) -> None:
    # Pub/Sub and Kafka Connect send Date fields as days; some bridges as ms.
    assert only_change(run(event(CloseDate=19997))).fields == {"close_date": "2024-10-01"}
    assert only_change(run(event(CloseDate=1727740800000))).fields == {
        "close_date": "2024-10-01"
    }
