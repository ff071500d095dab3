"""Decode cost per event and format: ``python -m tests.sources.bench_decode``.

Not a test (timings depend on the machine). Each line also shows the cost of
the floor every decoder pays, ``orjson.loads`` of the same bytes plus one
validated ``OpportunityChange(...)``, so results compare across machines.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from processor.sources import bulk
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings
from schemas.change import OpportunityChange

from .conftest import PAYLOADS

NUMBER = 5_000
REPEAT = 7


def _best(function: Callable[[], Any]) -> float:
    return min(timeit.repeat(function, number=NUMBER, repeat=REPEAT)) / NUMBER * 1e6


def _floor(raw: bytes, events: int) -> float:
    """orjson.loads of the message shared by its events, plus one validated
    record per event."""
    moment = datetime(2024, 5, 1, tzinfo=UTC)

    def record() -> None:
        OpportunityChange(
            event_id="e", source="s", opportunity_id="o", occurred_at=moment, op="upsert"
        )

    return _best(lambda: orjson.loads(raw)) / events + _best(record)


def _cases() -> dict[str, bytes]:
    def file(name: str) -> bytes:
        return (PAYLOADS / name).read_bytes()

    hubspot_batch = orjson.loads(file("hs_deal_batch.json"))
    generic_events = orjson.loads(file("generic_events.json"))
    row = {
        "Id": "006Dn000004ZKcXIAW", "Name": "Acme", "StageName": "Proposal", "Amount": "120000",
        "CloseDate": "2024-09-30", "OwnerId": "005Dn000001AbCdIAK", "NextStep": "",
        "SystemModstamp": "2024-05-01T10:00:00.000+0000", "IsDeleted": "false",
    }
    return {
        "salesforce CREATE, CometD wrapper, 17 fields": file("sf_opportunity_create_cometd.json"),
        "salesforce UPDATE, Pub/Sub, all fields": file("sf_opportunity_update_pubsub.json"),
        "salesforce UPDATE, Kafka Connect, 2 ids": file("sf_opportunity_update_kafka_connect.json"),
        "salesforce Task CREATE (activity)": file("sf_task_create.json"),
        "hubspot propertyChange, array of 1": orjson.dumps(hubspot_batch[1:2]),
        "hubspot recorded batch of 10": file("hs_deal_batch.json"),
        "generic upsert, 5 fields": orjson.dumps(generic_events[0]),
        "generic activity": orjson.dumps(generic_events[1]),
        "bulk row envelope, 9 columns": orjson.dumps(
            {"export_id": "e1", "exported_at": "2024-05-03T00:00:00Z", "row": row}
        ),
    }


def main() -> None:
    mappings = FieldMappings()
    print(f"{'format':48s} {'us/event':>9s} {'floor':>7s} {'ratio':>6s}")
    for name, raw in _cases().items():
        result = decode(raw, mappings)
        events = len(result.changes) + len(result.rejects) + result.ignored
        per_event = _best(partial(decode, raw, mappings)) / events
        floor = _floor(raw, events)
        print(f"{name:48s} {per_event:9.2f} {floor:7.2f} {per_event / floor:6.2f}")
    row = {"Id": "006A", "StageName": "Discovery", "Amount": "5", "CloseDate": "2024-09-30"}
    moment = datetime(2024, 5, 3, tzinfo=UTC)
    cost = _best(
        partial(bulk.normalize_row, row, export_id="e", exported_at=moment, mappings=mappings)
    )
    print(f"{'bulk normalize_row (CSV row, 4 columns)':48s} {cost:9.2f}")


if __name__ == "__main__":
    main()
