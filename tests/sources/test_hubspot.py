"""HubSpot deal webhooks: every subscription type, batches, merges,
associations, coercion of property strings, and rejects."""

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

DEAL = "18420399216"
T = datetime(2024, 4, 29, 19, 0, tzinfo=UTC)


def expected(**values: Any) -> OpportunityChange:
    values.setdefault("source", "hubspot")
    return OpportunityChange(**values)


def hs(subscription: str = "deal.propertyChange", **extra: Any) -> dict[str, Any]:
    """One webhook event with HubSpot's envelope keys."""
    base: dict[str, Any] = {
        "eventId": 100,
        "subscriptionId": 2281911,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": 1714417200000,
        "subscriptionType": subscription,
        "attemptNumber": 0,
        "changeSource": "CRM_UI",
    }
    if subscription != "deal.associationChange":
        base["objectId"] = int(DEAL)
    return {**base, **extra}


def single(run: Run, event: dict[str, Any]) -> DecodeResult:
    return run([event])  # HubSpot always posts arrays



def test_a_recorded_batch(run: Run, payload: Callable[[str], bytes]) -> None:
    result = run(payload("hs_deal_batch.json"))

    def at(minute: int) -> datetime:
        return datetime(2024, 4, 29, 19, minute, tzinfo=UTC)

    p = "hs:62515"
    assert result.changes == [
        expected(event_id=f"{p}:1043213:creation:{DEAL}", opportunity_id=DEAL, occurred_at=at(0),
                 op="upsert"),
        expected(event_id=f"{p}:1043214:propertyChange:{DEAL}:dealstage", opportunity_id=DEAL,
                 occurred_at=at(1), op="upsert", fields={"stage": "qualifiedtobuy"}),
        expected(event_id=f"{p}:1043215:propertyChange:{DEAL}:closedate", opportunity_id=DEAL,
                 occurred_at=at(2), op="upsert", fields={"close_date": "2024-09-30"}),
        expected(event_id=f"{p}:1043216:propertyChange:{DEAL}:amount", opportunity_id=DEAL,
                 occurred_at=at(3), op="upsert", fields={"amount": 125000.5}),
        expected(event_id=f"{p}:1043217:propertyChange:{DEAL}:hs_next_step", opportunity_id=DEAL,
                 occurred_at=at(4), op="upsert", nulled_fields=["next_step"]),
        # 1043218 (hs_analytics_source) is mapped by nothing: ignored, counted below.
        expected(event_id=f"{p}:1043219:associationChange:{DEAL}:901", opportunity_id=DEAL,
                 occurred_at=at(6), op="upsert", contact_ids=["901"]),
        expected(event_id=f"{p}:1043220:deletion:18420399300", opportunity_id="18420399300",
                 occurred_at=at(7), op="delete"),
        expected(event_id=f"{p}:1043221:restore:18420399300", opportunity_id="18420399300",
                 occurred_at=at(8), op="restore"),
        expected(event_id=f"{p}:1043222:merge:{DEAL}", opportunity_id=DEAL, occurred_at=at(9),
                 op="merge", merged_into="18420399500"),
        expected(event_id=f"{p}:1043222:merge:18420399300", opportunity_id="18420399300",
                 occurred_at=at(9), op="merge", merged_into="18420399500"),
    ]
    assert (result.rejects, result.ignored) == ([], 1)


def test_creation_may_carry_a_property(run: Run) -> None:
    change = only_change(
        single(run, hs("deal.creation", propertyName="dealname", propertyValue=" Umbrella "))
    )

    assert change == expected(
        event_id=f"hs:62515:100:creation:{DEAL}",
        opportunity_id=DEAL,
        occurred_at=T,
        op="upsert",
        fields={"name": "Umbrella"},
    )


@pytest.mark.parametrize(
    ("name", "value", "fields"),
    [
        ("closedate", "1727654400000", {"close_date": "2024-09-30"}),
        ("closedate", "2024-09-30T00:00:00.000Z", {"close_date": "2024-09-30"}),
        ("closedate", "2024-09-30", {"close_date": "2024-09-30"}),
        ("notes_next_activity_date", "1717200000000", {"next_meeting_date": "2024-06-01"}),
        ("hs_deal_stage_probability", "0.4", {"probability": 0.4}),
        ("num_associated_contacts", "3", {"contact_count": 3}),
        ("hs_manual_forecast_category", "COMMIT", {"forecast_category": "COMMIT"}),
    ],
)
def test_property_strings_are_coerced(
    run: Run, name: str, value: str, fields: dict[str, Any]
) -> None:
    change = only_change(single(run, hs(propertyName=name, propertyValue=value)))

    assert change.fields == fields


def test_unmapped_property_is_ignored_and_counted(run: Run) -> None:
    result = single(run, hs(propertyName="hs_analytics_source", propertyValue="DIRECT"))

    assert (result.changes, result.rejects, result.ignored) == ([], [], 1)


def test_system_property_is_ignored_even_when_mapped() -> None:
    mappings = FieldMappings.with_overrides({"hubspot": {"hs_lastmodifieddate": "modified"}})
    event = hs(propertyName="hs_lastmodifieddate", propertyValue="1714417200000")

    result = decode(orjson.dumps([event]), mappings)

    assert (result.changes, result.ignored) == ([], 1)


def test_custom_property_mapping() -> None:
    mappings = FieldMappings.with_overrides({"hubspot": {"budget_ok": "budget_confirmed"}})
    event = hs(propertyName="budget_ok", propertyValue="yes")

    assert only_change(decode(orjson.dumps([event]), mappings)).fields == {
        "budget_confirmed": "yes"
    }


def test_merge_without_a_new_deal_keeps_the_primary(run: Run) -> None:
    event = hs("deal.merge", primaryObjectId=1, mergedObjectIds=[2, 1, 3, 2])

    result = single(run, event)

    assert result.changes == [
        expected(event_id="hs:62515:100:merge:2", opportunity_id="2", occurred_at=T, op="merge",
                 merged_into="1"),
        expected(event_id="hs:62515:100:merge:3", opportunity_id="3", occurred_at=T, op="merge",
                 merged_into="1"),
    ]


def test_merge_needs_the_merged_ids(run: Run) -> None:
    assert only_reject(single(run, hs("deal.merge", primaryObjectId=1))) == (
        "schema_violation",
        "[0] mergedObjectIds: required for deal.merge",
    )


def test_contact_to_deal_association_reads_the_other_way(run: Run) -> None:
    event = hs("deal.associationChange", associationType="CONTACT_TO_DEAL", fromObjectId=901,
               toObjectId=int(DEAL), associationRemoved=False)

    change = only_change(single(run, event))

    assert (change.opportunity_id, change.contact_ids, change.event_id) == (
        DEAL,
        ["901"],
        f"hs:62515:100:associationChange:{DEAL}:901",
    )


@pytest.mark.parametrize(
    ("kind", "removed"), [("DEAL_TO_CONTACT", True), ("DEAL_TO_COMPANY", False)]
)
def test_removed_or_non_contact_associations_are_ignored(
    run: Run, kind: str, removed: bool
) -> None:
    event = hs("deal.associationChange", associationType=kind, fromObjectId=int(DEAL),
               toObjectId=5, associationRemoved=removed)

    result = single(run, event)

    assert (result.changes, result.rejects, result.ignored) == ([], [], 1)


def test_generic_object_webhook_for_deals(run: Run) -> None:
    event = hs("object.propertyChange", objectTypeId="0-3", propertyName="dealstage",
               propertyValue="closedwon")

    change = only_change(single(run, event))

    assert (change.event_id, change.fields) == (
        f"hs:62515:100:propertyChange:{DEAL}:dealstage",
        {"stage": "closedwon"},
    )


def test_event_id_survives_retries_and_differs_across_portals(run: Run) -> None:
    first = only_change(single(run, hs(propertyName="dealstage", propertyValue="x")))
    retry = only_change(
        single(run, hs(propertyName="dealstage", propertyValue="x", attemptNumber=3))
    )
    other_portal = only_change(
        single(run, hs(propertyName="dealstage", propertyValue="x", portalId=7))
    )

    assert first.event_id == retry.event_id
    assert first.event_id != other_portal.event_id


def test_a_single_event_not_in_an_array_is_accepted(run: Run) -> None:
    change = only_change(run(hs(propertyName="dealstage", propertyValue="x")))

    assert change.fields == {"stage": "x"}


# ---- rejects ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason", "message"),
    [
        (
            hs("contact.propertyChange", propertyName="email", propertyValue="a@b.c"),
            "unsupported_entity",
            "[0] subscriptionType: 'contact.propertyChange' is about contact, not deals "
            "(deal.*, or object.* with objectTypeId '0-3' except associationChange)",
        ),
        (
            hs("object.creation", objectTypeId="0-1"),
            "unsupported_entity",
            "[0] subscriptionType: 'object.creation' is about object type '0-1', not deals "
            "(deal.*, or object.* with objectTypeId '0-3' except associationChange)",
        ),
        (
            hs("deal.privacyDeletion"),
            "schema_violation",
            "[0] subscriptionType: 'deal.privacyDeletion' is not a deal event this source reads",
        ),
        (
            hs(occurredAt="1714417200000", propertyName="dealstage", propertyValue="x"),
            "schema_violation",
            "[0] occurredAt: Input should be a valid integer, got str '1714417200000'",
        ),
        (
            {k: v for k, v in hs(propertyName="dealstage", propertyValue="x").items()
             if k != "objectId"},
            "schema_violation",
            "[0] objectId: required for deal.propertyChange",
        ),
        (
            hs(propertyName="dealstage"),
            "schema_violation",
            "[0] propertyValue: missing for property 'dealstage'",
        ),
        (
            hs(propertyName="amount", propertyValue="a lot"),
            "schema_violation",
            "[0] propertyValue: field 'amount': 'a lot' is not a number",
        ),
        (
            hs(propertyName="closedate", propertyValue="soon"),
            "schema_violation",
            "[0] propertyValue: 'closedate': field 'close_date': 'soon' is not a date",
        ),
        (
            hs(eventId=True, propertyName="dealstage", propertyValue="x"),
            "schema_violation",
            "[0] eventId: expected an id (string or integer), got bool True",
        ),
        (
            hs("deal.associationChange", fromObjectId=1, toObjectId=2),
            "schema_violation",
            "[0] associationType: required for deal.associationChange",
        ),
        (
            hs("object.associationChange", objectTypeId="0-3"),
            "unsupported_entity",
            "[0] subscriptionType: 'object.associationChange' is about object type '0-3', not "
            "deals (deal.*, or object.* with objectTypeId '0-3' except associationChange)",
        ),
        (
            hs("deal.merge", primaryObjectId=1, mergedObjectIds=[2, " "]),
            "schema_violation",
            "[0] mergedObjectIds[1]: expected an id (string or integer), got str ' '",
        ),
        (
            {k: v for k, v in hs("deal.creation").items() if k != "portalId"},
            "schema_violation",
            "[0] portalId: Field required",
        ),
    ],
)
def test_rejects_name_the_key(run: Run, event: dict[str, Any], reason: str, message: str) -> None:
    assert only_reject(single(run, event)) == (reason, message)


def test_a_bad_event_does_not_sink_its_batch(run: Run) -> None:
    good = hs(propertyName="dealstage", propertyValue="x")
    bad = hs(occurredAt=None)

    result = run([good, bad, good])

    assert len(result.changes) == 2
    assert [(r.reason, r.raw) for r in result.rejects] == [
        ("schema_violation", orjson.dumps(bad))
    ]
