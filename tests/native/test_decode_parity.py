"""Parity of the native decoder (``hygiene_decode``) with the Python one,
which stays the reference until this suite proves them identical.

Every input goes through both ``processor.sources.detect.decode`` and
``Decoder.decode``; the results must agree on each change (validated from the
native JSON, and also compared type for type, so that 1 and 1.0 differ), the
ignored count, the reject reasons and the reject texts. The one text allowed
to differ is the JSON parser's own description of malformed JSON (see
native/decode/STATUS.md): only its reason and our prefix are compared.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor import hygiene_decode  # built with the package: never skipped
from processor.rules import default_rules
from processor.simulate import simulate
from processor.sources.base import build_change
from processor.sources.detect import MAX_BYTES, decode
from processor.sources.export import native_mappings
from processor.sources.mapping import FieldMappings
from schemas.change import OpportunityChange

START = datetime(2026, 1, 1, tzinfo=UTC)
PAYLOADS = Path(__file__).parents[1] / "sources" / "payloads"
SEEDS = (1, 2, 3)
FORMATS = ("salesforce", "hubspot", "generic", "mixed")

CUSTOM = FieldMappings.with_overrides(
    {
        "salesforce": {
            "Region__c": "region",
            "Forecast_Amount__c": "amount",
            "Renewal_Date__c": "close_date",
            "Seats__c": "contact_count",
            "BillingAddress.City": "city",
            "CreatedDate": "created",
            "Amount": "probability",
        },
        "hubspot": {
            "deal_region": "region",
            "seats": "contact_count",
            "renewal_date": "next_step_date",
            "hs_object_id": "object",
        },
        "generic": {"amt": "amount", "when": "close_date", "heads": "contact_count", "x": "stage"},
        "bulk": {"Region": "region", "Amount__c": "amount"},
    }
)
"""A rules file's ``field_mapping``: renames, extra fields, a second name for
one canonical field, a compound component and a system field."""

MAPPINGS = {"default": FieldMappings(), "custom": CUSTOM}


@functools.cache
def decoder(which: str) -> Any:
    return hygiene_decode.Decoder(native_mappings(MAPPINGS[which]))


def typed(value: Any) -> Any:
    """JSON with every scalar tagged by its type: 1 and 1.0 must not compare equal."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def as_json(change: OpportunityChange) -> dict[str, Any]:
    """The change as ``encode_changes`` writes it, except that ints beyond
    64 bits (``int(1e300)`` for a count) stay ints instead of failing."""
    return {**change.__dict__, "occurred_at": change.occurred_at.isoformat()}


def differences(raw: bytes, which: str) -> list[str]:
    mappings = MAPPINGS[which]
    expected = decode(raw, mappings)
    changes, ignored, rejects = decoder(which).decode(raw)
    shown = raw[:300]
    found: list[str] = []
    if len(changes) != len(expected.changes):
        found.append(f"{shown!r}: {len(changes)} changes, Python {len(expected.changes)}")
    for native, reference in zip(changes, expected.changes, strict=False):
        if OpportunityChange.model_validate_json(native) != reference:
            found.append(f"{shown!r}: change {native!r} != {reference!r}")
        elif typed(json.loads(native)) != typed(as_json(reference)):
            found.append(f"{shown!r}: types {native!r} != {as_json(reference)!r}")
    if ignored != expected.ignored:
        found.append(f"{shown!r}: ignored {ignored}, Python {expected.ignored}")
    python_rejects = [(r.reason, r.error) for r in expected.rejects]
    if [r[0] for r in rejects] != [r[0] for r in python_rejects]:
        found.append(f"{shown!r}: rejects {rejects!r}, Python {python_rejects!r}")
    else:
        for (reason, text), (_, reference_text) in zip(rejects, python_rejects, strict=True):
            if reason == "malformed_json":
                if not text.startswith("not JSON: "):
                    found.append(f"{shown!r}: {text!r}")
            elif text != reference_text:
                found.append(f"{shown!r}:\n  native {text!r}\n  Python {reference_text!r}")
    return found


def assert_parity(raws: list[bytes], which: str = "default") -> None:
    found = [problem for raw in raws for problem in differences(raw, which)]
    assert not found, f"{len(found)} differences:\n" + "\n".join(found[:25])


# ---- inputs -----------------------------------------------------------------

@functools.cache
def simulated(fmt: str, seed: int) -> list[bytes]:
    return simulate(
        opportunities=150, days=90, seed=seed, fmt=fmt, start=START,  # type: ignore[arg-type]
        rules=default_rules(),
    ).events


def payload_messages() -> list[bytes]:
    raws = []
    for path in sorted(PAYLOADS.iterdir()):
        data = path.read_bytes()
        raws.append(data)
        if path.suffix == ".jsonl":
            raws.extend(line for line in data.splitlines() if line.strip())
        elif path.suffix == ".json" and isinstance(document := orjson.loads(data), list):
            raws.extend(orjson.dumps(element) for element in document)
    return raws


def sf_event(change_type: str = "UPDATE", entity: str = "Opportunity", **values: Any) -> Any:
    header = {
        "entityName": entity,
        "recordIds": ["006A"],
        "changeType": change_type,
        "commitTimestamp": 1714521600000,
        "sequenceNumber": 1,
        "transactionKey": "t1",
    }
    return {"ChangeEventHeader": header, **values}


def hs_event(subscription: str = "deal.propertyChange", **values: Any) -> Any:
    return {
        "eventId": 1,
        "portalId": 2,
        "occurredAt": 1714521600000,
        "subscriptionType": subscription,
        "objectId": 3,
        **values,
    }


def generic_event(**values: Any) -> Any:
    return {
        "source": "x",
        "event_id": "e1",
        "opportunity_id": "o1",
        "occurred_at": "2024-05-01T00:00:00Z",
        "op": "upsert",
        **values,
    }


BULK_ROW = {
    "export_id": "x1",
    "exported_at": "2024-05-01T00:00:00Z",
    "row": {"Id": "006B", "StageName": "Discovery", "Amount": "10", "IsDeleted": "false"},
}

HUBSPOT_PROPERTIES = [
    *sorted(FieldMappings().hubspot),
    "hs_object_id", "createdate", "hs_analytics_source", "deal_region", "seats", "renewal_date",
]

BASES: list[Any] = [
    sf_event("CREATE", StageName="Discovery", Amount=5000, CloseDate="2024-06-30", Name=None),
    sf_event("UPDATE", StageName="Negotiation", Amount=None, Probability="40"),
    sf_event(
        "UPDATE", Amount=1, NextStep="call",
        ChangeEventHeader={**sf_event()["ChangeEventHeader"], "nulledFields": ["NextStep", "Id"],
                           "diffFields": ["Description"]},
    ),
    sf_event("UNDELETE", StageName="Closed Won", Engaged_Contacts__c=3.7),
    sf_event("DELETE"),
    sf_event("GAP_UPDATE", StageName="x"),
    sf_event("GAP_OVERFLOW"),
    sf_event("CREATE", "Task", WhatId="006A", WhoId="003B"),
    sf_event("UPDATE", "Event", WhatId="001A", WhoId="003B"),
    sf_event("DELETE", "Task", WhatId="006A"),
    sf_event("UPDATE", BillingAddress={"City": "Oslo", "Street": None},
             Region__c={"string": " North "}, Seats__c={"int": 4}),
    {"payload": sf_event(Amount="12.5")},
    {"channel": "/data/x", "data": {"payload": sf_event(CloseDate=19997)}},
    {"data": sf_event(CloseDate=1727740800000)},
    hs_event(propertyName="amount", propertyValue="1000.50"),
    hs_event(propertyName="closedate", propertyValue="1727740800000"),
    hs_event("deal.creation", propertyName="dealstage", propertyValue="appointmentscheduled"),
    hs_event("deal.deletion"),
    hs_event("deal.restore"),
    hs_event("deal.merge", primaryObjectId=3, mergedObjectIds=[4, "5", 3], newObjectId=9),
    hs_event("deal.merge", primaryObjectId=3, mergedObjectIds=[3]),
    hs_event("deal.associationChange", associationType="DEAL_TO_CONTACT", fromObjectId=3,
             toObjectId=7),
    hs_event("deal.associationChange", associationType="CONTACT_TO_DEAL", fromObjectId=7,
             toObjectId=3, associationRemoved=False),
    hs_event("object.propertyChange", objectTypeId="0-3", propertyName="dealname",
             propertyValue=" Big "),
    hs_event("contact.creation"),
    generic_event(fields={"stage": "Discovery", "amount": "5", "close_date": 19997,
                          "custom": True, "amt": 3, "when": "2024-01-01T10:00:00+05:00"},
                  nulled_fields=["next_step", "amt"], contact_ids=[1, "c2"], full=True,
                  sequence=4),
    generic_event(op="activity", occurred_at=1714521600000),
    BULK_ROW,
    {**BULK_ROW, "row": {"hs_object_id": 5, "properties": {"dealstage": "won", "archived": "yes"}}},
]
"""Valid events of every kind; the fuzzer breaks each key of each in turn."""

ODD_VALUES: list[Any] = [
    None, "", " ", 0, 1, -1, 1.5, -0.0, True, False, [], {}, "x", ["x"], [1], {"a": 1},
    {"string": "s"}, 2**63, 2**64 - 1, 1e300, "0x1", "2024-01-01", "1714521600000", "006A*",
    "000000000000000AAA", "n\u00e4me \u2028 'q' \"d\"", "a" * 80, ["0x12"], ["a-0x1"], [None],
    [""], "\u00a0 5 \x1f",
]

TIMES: list[Any] = [
    "2024-05-01", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00+02:00", "2024-05-01 10:00",
    "20240501T1000", "2024-W18-3T10", "2024W183", "2024-05-01T10:00:00.123456789Z",
    "2024-05-01T10:00:00,5-01:30", "2024-05-01T10", "2024-05-01T1000", "2024-05-01T100000.5",
    "2024-05-01T10:00:00:123", "2024-05-01T1200001", "2024-05-01T10.5", "2024-05-01T10:0",
    "2024-05-01T25:00", "2024-02-30", "2023-02-29T00:00", "2024-05-01T10:00+24:00",
    "2024-05-01T10:00+23:59:59.999999", "2024-05-01T10:00Z ", " 2024-05-01T10:00:00Z ",
    "2024-05-01\u00e910:00", "0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "2024-05",
    "2024-W53", "2020-W53-7", "2024-05-01T", "2024-05-01TZ", "2024-05-01T10:00-", "1714521600000",
    " 0017 ", "0", "99999999999999999999", "1" * 5000, "-5", "\u0661\u0662", "2024-13-01",
    "next quarter", 1714521600000, -62135596800000, -62135596800001, 253402300799999,
    253402300800000, 19997, 99999, 100000, -99999, 1.5e12, 19997.9, 2**64 - 1, True, None, [],
    "2024-05-01T10:00:00.", "2024-05-01T10:00:00.1234567890123", "2024-05-01T10:00:00+0530",
    "2024-05-01T10:00:00+05", "2024-05-01T10:00:00+5", "2024-05-01T10:00:00-00:00",
]
"""Timestamps and dates in the shapes CRMs send, and the edges of what
``datetime.fromisoformat`` and epoch numbers accept."""

NUMBERS: list[Any] = [
    "5", " 5.5 ", "1_000", "1__0", "_1", "1e3", "1E-3", ".5", "5.", "1.e2", "inf", "-Infinity",
    "nan", "1e400", "0x10", "abc", "", "-0", 3, 3.9, -3.9, 1e20, 2**63, 2**64 - 1, True, False,
    "12,5", "\u00a0 7", "\u0663", "\u00b2", "1\u00b2", "\uff15\u2028", "\x1c5", "1e1_0",
    123456789.123456789,
]


def breakages(value: Any) -> Iterator[Any]:
    """``value`` with one key deleted or given an odd value, at every depth."""
    if not isinstance(value, dict):
        return
    for key in list(value):
        without = dict(value)
        del without[key]
        yield without
        for odd in ODD_VALUES:
            yield {**value, key: odd}
        for broken in breakages(value[key]):
            yield {**value, key: broken}


def with_values(key_path: list[str], values: list[Any], base: Any) -> list[bytes]:
    raws = []
    for value in values:
        event = copy.deepcopy(base)
        target = event
        for key in key_path[:-1]:
            target = target[key]
        target[key_path[-1]] = value
        raws.append(orjson.dumps(event))
    return raws


def hand_written() -> list[bytes]:
    raws = [
        b'{"a": ', b"\xff\xfe", b"[]", b"42", b'"text"', b"null", b"true", b"1.5",
        b'{"id": 1, "type": "deal"}', b"{}", orjson.dumps({f"k{i:02}": i for i in range(10)}),
        b'[{"a": 1}, 2, [], null]', b"[1, 2", b'{"a": 1} x', b'{"a": NaN}', b'"\\ud800"',
        b'{"event_id": "e", "opportunity_id": "o", "event_id": 5}', b"  " + orjson.dumps(BULK_ROW),
        b"{" * 11, b"x" * (MAX_BYTES + 1), b"[" * 1025 + b"]" * 1025,
        b'{"a":' * 1024 + b"1" + b"}" * 1024, b'{"a":' * 1025 + b"1" + b"}" * 1025,
        b'[{"event_id": "\\u00e9\\n", "x": "\\ud83d\\ude00"}]', orjson.dumps([BULK_ROW] * 3),
        b'{"source": "x", "event_id": 1e2, "opportunity_id": 18446744073709551616, "op": "x", '
        b'"occurred_at": 18446744073709551616, "sequence": 0, "full": 1}',
        b'{"source": "x", "event_id": "e", "opportunity_id": "o", "op": "upsert", '
        b'"occurred_at": "2024-05-01", "fields": {"amount": 18446744073709551616, '
        b'"contact_count": 1e300, "close_date": -18446744073709551616}}',
        orjson.dumps({"ChangeEventHeader": ["x"]}), orjson.dumps({"payload": {"a": 1}}),
        orjson.dumps([sf_event(), hs_event("deal.deletion"), "not an event", generic_event(),
                      generic_event(op="gap"), {"payload": sf_event(Amount=5)}, BULK_ROW]),
        orjson.dumps(sf_event(ChangeEventHeader={**sf_event()["ChangeEventHeader"],
                                                 "recordIds": ["006A*", "", "006B"]})),
        orjson.dumps({**sf_event("CREATE"), "BillingAddress.City": "X",
                      "BillingAddress": {"City": "Y", "Country": {"a": 1}}}),
        orjson.dumps({"ChangeEventHeader": {**sf_event()["ChangeEventHeader"],
                                            "entityName": "Account"}}),
    ]
    for subscription in ("deal.propertyChange", "deal.creation"):
        for name in HUBSPOT_PROPERTIES:
            for value in ("12", " v ", None, "", 7, 2.5, False, "2024-06-30", "1727740800000"):
                event = hs_event(subscription, propertyName=name, propertyValue=value)
                raws.append(orjson.dumps(event))
        raws.append(orjson.dumps(hs_event(subscription, propertyName="amount")))
    for what in ("006A", "001A", "500A", 6, None, ["006A"], {"string": "006A"}):
        for who in ("003B", "00QB", None, 3):
            for change_type in ("CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE"):
                event = sf_event(change_type, "Task", WhatId=what, WhoId=who)
                raws.append(orjson.dumps(event))
    return raws


def value_corpus() -> list[bytes]:
    raws: list[bytes] = []
    raws += with_values(["occurred_at"], TIMES, generic_event())
    raws += with_values(["exported_at"], TIMES, BULK_ROW)
    raws += with_values(["row", "SystemModstamp"], TIMES, BULK_ROW)
    raws += with_values(["row", "IsDeleted"], [*NUMBERS, "Yes", "T", "nope", "\u017fes"], BULK_ROW)
    for field in ("close_date", "when", "amount", "amt", "contact_count", "heads", "stage", "x"):
        raws += with_values(["fields", field], TIMES + NUMBERS, generic_event(fields={}))
    for field in ("CloseDate", "Renewal_Date__c", "Amount", "Probability", "Seats__c",
                  "Engaged_Contacts__c", "StageName", "Region__c"):
        raws += with_values([field], TIMES + NUMBERS, sf_event())
    for name in ("closedate", "amount", "num_associated_contacts", "seats", "renewal_date"):
        raws += with_values(["propertyValue"], TIMES + NUMBERS,
                            hs_event(propertyName=name, propertyValue=""))
    raws += with_values(["ChangeEventHeader", "commitTimestamp"], TIMES, sf_event())
    raws += with_values(["occurredAt"], TIMES, hs_event("deal.deletion"))
    return raws


# ---- tests ------------------------------------------------------------------

@pytest.mark.parametrize("which", sorted(MAPPINGS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_simulated_traffic(fmt: str, which: str) -> None:
    for seed in SEEDS:
        assert_parity(simulated(fmt, seed), which)


@pytest.mark.parametrize("which", sorted(MAPPINGS))
def test_recorded_payloads(which: str) -> None:
    assert_parity(payload_messages(), which)


@pytest.mark.parametrize("which", sorted(MAPPINGS))
def test_hand_written_inputs(which: str) -> None:
    assert_parity(hand_written(), which)


@pytest.mark.parametrize("which", sorted(MAPPINGS))
def test_times_dates_and_numbers(which: str) -> None:
    assert_parity(value_corpus(), which)


@pytest.mark.parametrize("which", sorted(MAPPINGS))
@pytest.mark.parametrize("base", range(len(BASES)))
def test_every_key_broken_every_way(base: int, which: str) -> None:
    raws = [orjson.dumps(BASES[base])]
    raws += [orjson.dumps(broken) for broken in breakages(BASES[base])]
    assert_parity(raws, which)


def test_the_bases_decode_to_changes() -> None:
    """The fuzzer breaks valid events, so the events must be valid to begin with."""
    for base in BASES[:-1]:
        result = decode(orjson.dumps(base), CUSTOM)
        assert not result.rejects or base.get("subscriptionType") == "contact.creation", base


def test_decode_many_is_decode_per_message() -> None:
    raws = simulated("mixed", 1)[:500] + hand_written()[:30]
    native = decoder("default")

    assert native.decode_many(raws) == [native.decode(raw) for raw in raws]


def test_the_default_size_limit_is_the_python_one() -> None:
    assert hygiene_decode.MAX_BYTES == MAX_BYTES


def test_bad_mappings_json_is_refused() -> None:
    with pytest.raises(ValueError, match="mappings_json"):
        hygiene_decode.Decoder(b"{}")


@pytest.mark.parametrize("which", sorted(MAPPINGS))
def test_minus_zero_is_an_int_only_when_written_so(which: str) -> None:
    """orjson reads ``-0`` as the int 0 and ``-0.0`` / ``-0e0`` as floats;
    serde_json reads all three as -0.0 unless the decoder corrects it."""
    event = (
        b'{"source": "x-0", "event_id": "e-0", "opportunity_id": "o", "op": "upsert", '
        b'"occurred_at": "2024-05-01", "sequence": %s, "fields": {"custom": %s, '
        b'"amount": %s, "text": "-0"}, "contact_ids": [-0, "-0", 7]}'
    )
    raws = [
        event % (seq, custom, amount)
        for seq in (b"-0", b"0", b"-0.0")
        for custom in (b"-0", b"-0.0", b"-0E1", b"-01")
        for amount in (b"-0", b"-0.0")
    ]
    raws += [b"[-0]", b"-0", b'{"event_id": -0}', b'{"event_id": -0.0}', b"[-0, -0.0, -0e0]"]
    assert_parity(raws, which)


def test_records_built_without_validation_equal_the_python_ones() -> None:
    """The cheap way back to records the wiring plan relies on: the native
    JSON parsed and handed to ``build_change``, which trusts its types."""
    raws = simulated("mixed", 2)
    native = decoder("default")
    for raw, (changes, _, _) in zip(raws, native.decode_many(raws), strict=True):
        built = []
        for change in changes:
            values = orjson.loads(change)
            values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
            built.append(build_change(**values))
        assert built == decode(raw, FieldMappings()).changes
