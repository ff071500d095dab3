"""Manager rollups and overrides through the real broker with a real
worker: rollups follow deals that move between managers and periods, close
or are deleted; overrides are accepted (override-log record, rollup shows
it) or refused (dead letter with the reason)."""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from processor.forecast.fiscal import FiscalCalendar
from processor.rules import RuleSet
from processor.stream.routing import Partitioner
from schemas import DeadLetter
from schemas.forecast import OverrideLogRecord, RollupRecord, RollupRowRecord
from tests.forecast.harness import compare, oracle

from .conftest import NewStream, NewWorker
from .support import PARTITIONS, Kafka, Rec, Stream, dead_letters, replay, wait_for

pytestmark = pytest.mark.integration

START = datetime(2026, 2, 2, 9, tzinfo=UTC)
CALENDAR = FiscalCalendar(2)  # FY2027-Q1 = Feb-Apr 2026, Q2 = May-Jul 2026
DEAL = {"name": "Deal", "stage": "Discovery", "pipeline": "New Business", "currency": "USD",
        "forecast_category": "Pipeline", "owner_id": "u-1"}


def event(opp: str, n: int, hours: int, op: str = "upsert", **fields: Any) -> tuple[bytes, bytes]:
    payload = {"source": "pipedrive", "event_id": f"{opp}-{n}", "opportunity_id": opp,
               "occurred_at": (START + timedelta(hours=hours)).isoformat(), "op": op,
               "fields": fields, "full": n == 0}
    return opp.encode(), orjson.dumps(payload)


def latest(records: list[Rec]) -> dict[tuple[str, str], RollupRecord]:
    found: dict[tuple[str, str], RollupRecord] = {}
    for r in records:  # per manager, one partition, in offset order
        record = RollupRecord.model_validate_json(r.value)
        assert r.key == record.manager_id.encode()
        found[record.manager_id, record.period] = record
    return found


def matches(rules: RuleSet, messages: Sequence[tuple[bytes | None, bytes]]) -> Any:
    want = oracle(replay(rules, messages).states.values(), rules, CALENDAR)

    def check(records: list[Rec]) -> bool:
        try:
            compare(latest(records), want)
        except AssertionError:
            return False
        return True

    return check


TOKEN = "rollups-api-token"


def override(**fields: Any) -> tuple[bytes | None, bytes]:
    body = {"override_id": "ov-1", "manager_id": "m-ann", "period": "FY2027-Q1",
            "category": "Commit", "amount": 250000.0, "currency": "USD",
            "reason": "Globex signs Friday, CFO confirmed", "submitted_by": "u-vp",
            "submitted_at": "2026-03-01T10:00:00Z", **fields}
    return b"whatever", orjson.dumps({k: v for k, v in body.items() if v is not ...})


def test_rollups_follow_moves_and_overrides_are_logged_or_refused(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    stream: Stream = new_stream(HYGIENE_ROLLUP_PUBLISH_SECONDS="1",
                                HYGIENE_FISCAL_YEAR_START_MONTH="2",
                                HYGIENE_API_TOKEN=TOKEN)
    worker = new_worker("w", stream).start().wait_ready()
    partition_of = Partitioner(PARTITIONS)
    ann = [f"opp-r-{n}" for n in range(8)]
    assert len({partition_of(opp) for opp in ann}) > 2
    messages = [event(opp, 0, n, manager_id="m-ann", amount=1000.0 * (n + 1),
                      close_date="2026-03-31" if n % 2 else "2026-05-15", **DEAL)
                for n, opp in enumerate(ann)]
    messages += [event("opp-bob", 0, 9, manager_id="m-bob", amount=70.5,
                       close_date="2026-04-01", **{**DEAL, "currency": "EUR"})]
    kafka.produce(stream.input, messages)
    rollups = stream.names["rollups"]
    first = kafka.read_until(rollups, matches(rules, messages), 120,
                             "rollups of the new deals", explain=worker.log_tail)
    assert set(latest(first)) == {("m-ann", "FY2027-Q1"), ("m-ann", "FY2027-Q2"),
                                  ("m-bob", "FY2027-Q1")}
    assert len(first) < len(messages), "published per interval, not per event"

    moves = [event(ann[1], 1, 20, manager_id="m-bob"),        # another manager
             event(ann[2], 1, 21, close_date="2026-04-10"),   # another period
             event(ann[3], 1, 22, stage="Closed Won"),        # closed: category Closed
             event(ann[4], 1, 23, op="delete"),               # leaves
             event(ann[5], 1, 24, stage="Negotiation", forecast_category="Commit",
                   amount=250.0)]
    kafka.produce(stream.input, moves)
    records = kafka.read_until(rollups, matches(rules, messages + moves), 120,
                               "rollups after the moves", explain=worker.log_tail)
    now = latest(records)
    bob = {c.category: c for c in now["m-bob", "FY2027-Q1"].categories}
    assert {t.currency: t.amount for t in bob["Pipeline"].totals} == {"EUR": 70.5,
                                                                      "USD": 2000.0}
    ann_q1 = {c.category: c for c in now["m-ann", "FY2027-Q1"].categories}
    assert [(t.currency, t.amount) for t in ann_q1["Closed"].won] == [("USD", 4000.0)]
    assert [(t.currency, t.amount) for t in ann_q1["Commit"].totals] == [("USD", 250.0)]

    # Overrides: one accepted, five refused.
    refused = [override(override_id="ov-blank", reason="  "),
               override(override_id="ov-nobody", manager_id="m-nobody"),
               override(override_id="ov-later", period="FY2028-Q1"),
               override(override_id="ov-neg", amount=-5.0),
               (b"broken", b'{"manager_id": "m-ann", ')]
    kafka.produce(stream.names["overrides"], [override(), *refused])
    logs = kafka.read_until(stream.names["override_log"], lambda r: len(r) >= 1, 60,
                            "the override-log record", explain=worker.log_tail)
    ((log_rec,),) = [logs]
    log = OverrideLogRecord.model_validate_json(log_rec.value)
    assert log_rec.key == b"m-ann"
    assert (log.override_id, log.submitted_by, log.reason) == (
        "ov-1", "u-vp", "Globex signs Friday, CFO confirmed")
    assert (log.value_before, log.value_before_source, log.value_after, log.system_total) == (
        250.0, "system", 250000.0, 250.0)

    def shows_override(records: list[Rec]) -> bool:
        commit = next(c for c in latest(records)["m-ann", "FY2027-Q1"].categories
                      if c.category == "Commit")
        return commit.override is not None and commit.override.override_id == "ov-1"

    shown = latest(kafka.read_until(rollups, shows_override, 60, "the rollup with the override",
                                    explain=worker.log_tail))
    commit = next(c for c in shown["m-ann", "FY2027-Q1"].categories if c.category == "Commit")
    assert commit.override is not None
    assert (commit.override.amount, commit.override.reason) == (
        250000.0, "Globex signs Friday, CFO confirmed")
    assert [(t.currency, t.amount) for t in commit.totals] == [("USD", 250.0)]

    # The flat warehouse rows published beside the snapshots: their latest
    # versions hold what the latest snapshots hold, zeroed rows aside.
    def cut(snapshots: dict[tuple[str, str], RollupRecord]) -> set[tuple[Any, ...]]:
        return {(r.manager_id, r.period, c.category, t.currency, t.amount, t.count,
                 c.override.amount if c.override and c.override.currency == t.currency
                 else None)
                for r in snapshots.values() for c in r.categories for t in c.totals}

    def rows_match(records: list[Rec]) -> bool:
        rows = {row.record_id: row for row in
                (RollupRowRecord.model_validate_json(r.value) for r in records)}
        return {(w.manager_id, w.period, w.category, w.currency, w.amount, w.count,
                 w.override_amount) for w in rows.values() if w.count} == cut(shown)

    kafka.read_until(stream.names["rollup_rows"], rows_match, 60,
                     "rollup rows matching the snapshots", explain=worker.log_tail)

    def refusals() -> list[DeadLetter]:
        found = [d for d in dead_letters(kafka.read(stream.dead_letter))
                 if d.source == stream.names["overrides"]]
        return found if len(found) >= len(refused) else []

    letters = wait_for(refusals, 60, "the refused overrides", explain=worker.log_tail)
    codes = sorted(d.error.split(":", 1)[0] for d in letters)
    assert codes == sorted(["missing_reason", "unknown_manager", "unknown_period",
                            "invalid_override", "malformed_json"])
    by_code = {d.error.split(":", 1)[0]: d for d in letters}
    assert orjson.loads(by_code["unknown_period"].original_value())["override_id"] == "ov-later"
    assert by_code["malformed_json"].reason == "malformed_json"
    assert by_code["unknown_manager"].original_key_b64 is not None
    assert len(kafka.read(stream.names["override_log"])) == 1

    # The same through the authenticated HTTP endpoint: refused on the spot
    # when the request itself is wrong, otherwise 202 and, once the manager's
    # partition has decided, an override-log record.
    def post(body: bytes, token: str = TOKEN) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=15)
        try:
            conn.request("POST", "/v1/forecast/overrides", body=body,
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/json"})
            reply = conn.getresponse()
            return reply.status, orjson.loads(reply.read())
        finally:
            conn.close()

    http_override = {"manager_id": "m-bob", "period": "FY2027-Q1", "category": "Pipeline",
                     "amount": 5000.0, "currency": "EUR", "submitted_by": "u-bob-vp",
                     "reason": "Two renewals booked outside the CRM"}
    assert post(orjson.dumps(http_override), token="wrong")[0] == 401
    assert post(b'{"manager_id": ')[0] == 400
    status, body = post(orjson.dumps({**http_override, "reason": " "}))
    assert (status, body["error"]) == (422, "missing_reason")
    status, body = post(orjson.dumps(http_override))
    assert status == 202 and body["override_id"] and body["submitted_at"]
    logs = kafka.read_until(stream.names["override_log"], lambda r: len(r) >= 2, 60,
                            "the override submitted over HTTP", explain=worker.log_tail)
    logged = OverrideLogRecord.model_validate_json(logs[-1].value)
    assert (logged.override_id, logged.manager_id, logged.reason, logged.value_after) == (
        body["override_id"], "m-bob", "Two renewals booked outside the CRM", 5000.0)
    assert worker.stop() == 0
