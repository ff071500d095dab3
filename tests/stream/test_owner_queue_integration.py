"""Weekly hygiene digests through the real broker with real workers: an
owner whose deals sit on several partitions, owned by two workers, gets one
complete digest, biggest deals first, with ownership moves reflected; a
digest run the workers were down for is caught up after the restart, once.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from processor.alerts.digest_schedule import WEEKDAYS
from processor.alerts.queue import build_digest
from processor.core.engine import Engine
from processor.rules import RuleSet
from processor.stream.routing import Partitioner
from schemas import Digest

from .conftest import NewStream, NewWorker
from .support import PARTITIONS, Kafka, Stream, replay, wait_for

pytestmark = pytest.mark.integration

ZONE = "America/New_York"
START = datetime(2026, 3, 2, 9, tzinfo=UTC)
PROPOSAL = {  # a Proposal without a next meeting: two alerts open
    "name": "Deal", "stage": "Proposal", "pipeline": "New Business", "currency": "USD",
    "close_date": "2026-06-30", "identify_pain": "Manual reconciliation",
    "metrics": "Close in 4 days", "next_step": "Send the proposal",
    "next_step_date": "2026-03-20", "forecast_category": "Pipeline",
    "manager_id": "m-1",
}


def event(opp: str, n: int, hours: int, op: str = "upsert", **fields: Any) -> tuple[bytes, bytes]:
    payload = {"source": "pipedrive", "event_id": f"{opp}-{n}", "opportunity_id": opp,
               "occurred_at": (START + timedelta(hours=hours)).isoformat(), "op": op,
               "fields": fields, "full": n == 0}
    return opp.encode(), orjson.dumps(payload)


def schedule_at(when: datetime) -> dict[str, str]:
    local = when.astimezone(ZoneInfo(ZONE))
    return {"HYGIENE_DIGEST_WEEKDAY": WEEKDAYS[local.weekday()],
            "HYGIENE_DIGEST_TIME": local.time().replace(microsecond=0).isoformat(),
            "HYGIENE_DIGEST_TIMEZONE": ZONE, "HYGIENE_DIGEST_CHECK_SECONDS": "1"}


def digests(kafka: Kafka, stream: Stream) -> list[tuple[bytes | None, Digest]]:
    return [(r.key, Digest.model_validate_json(r.value))
            for r in kafka.read(stream.names["digests"])]


def test_an_owner_with_deals_on_several_partitions_gets_one_complete_digest(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    partition_of = Partitioner(PARTITIONS)
    # Owner u-ann's deals on every partition; two move to u-bob, one closes.
    ann = [f"opp-ann-{n}" for n in range(10)]
    assert {partition_of(opp) for opp in ann} == set(range(PARTITIONS))
    messages = [event(opp, 0, n, owner_id="u-ann", amount=1000.0 * (n + 1) ** 2, **PROPOSAL)
                for n, opp in enumerate(ann)]
    messages += [event("opp-bob-0", 0, 1, owner_id="u-bob", amount=5000.0, **PROPOSAL)]
    messages += [event(ann[3], 1, 20, owner_id="u-bob"), event(ann[7], 1, 21, owner_id="u-bob"),
                 event(ann[5], 1, 22, stage="Closed Lost"),
                 event(ann[0], 1, 23, amount=250000.0)]

    now = datetime.now(UTC)
    stream = new_stream()
    # First the workers run on a schedule whose latest run was days ago.
    early = schedule_at(now + timedelta(days=3))
    a = new_worker("a", stream, **early).start().wait_ready()
    b = new_worker("b", stream, **early).start().wait_ready()
    queues = stream.names["owner_queues"]

    def split() -> bool:
        found = kafka.assignment(stream.app_id, queues)
        return len(found) == 2 and all(found.values())

    wait_for(split, 60, "a and b split the owner-queue partitions",
             explain=lambda: a.log_tail() + b.log_tail())
    kafka.produce(stream.input, messages)

    def processed() -> bool:
        return stream.drained(kafka) and kafka.caught_up(stream.app_id, queues)

    wait_for(processed, 180, "changes applied and queue entries stored",
             explain=lambda: a.log_tail() + b.log_tail())
    assert a.stop() == 0 and b.stop() == 0

    # Down while this week's run came due: the restarted workers catch it up.
    due = now - timedelta(minutes=1)
    period = due.astimezone(ZoneInfo(ZONE)).date()
    late = schedule_at(due)
    a = new_worker("a2", stream, **late).start()
    b = new_worker("b2", stream, **late).start()
    a.wait_ready()
    b.wait_ready()

    def this_week() -> list[tuple[bytes | None, Digest]]:
        return [(k, d) for k, d in digests(kafka, stream) if d.period_start == period]

    def both_sent() -> list[tuple[bytes | None, Digest]]:
        found = this_week()
        return found if len(found) >= 2 else []

    found = wait_for(both_sent, 90,
                     "this week's digests of u-ann and u-bob",
                     explain=lambda: a.log_tail() + b.log_tail())

    oracle = replay(rules, messages).states.values()
    engine = Engine(rules)
    by_owner = {d.owner_id: d for _, d in found}
    assert {key for key, _ in found} == {b"u-ann", b"u-bob"}
    for owner in ("u-ann", "u-bob"):
        want = build_digest(owner, oracle, engine, 0, period)
        got = by_owner[owner]
        assert got.items == want.items, owner
        assert (got.opportunity_count, got.amount_at_risk) == (
            want.opportunity_count, want.amount_at_risk)
    ann_ids = [i.opportunity_id for i in by_owner["u-ann"].items]
    assert ann_ids == [ann[0], ann[9], ann[8], ann[6], ann[4], ann[2], ann[1]]
    assert [i.opportunity_id for i in by_owner["u-bob"].items] == [ann[7], ann[3], "opp-bob-0"]
    assert all(i.issues for d in by_owner.values() for i in d.items)

    # Both workers go on checking and find the period done: nothing is sent twice.
    wait_for(lambda: a.metric("hygiene_digest_checks_total", outcome="done") >= 2 * PARTITIONS
             and b.metric("hygiene_digest_checks_total", outcome="done") >= 2 * PARTITIONS,
             60, "the timers found this week's run done",
             explain=lambda: a.log_tail() + b.log_tail())
    counts = Counter(d.owner_id for _, d in this_week())
    assert counts == {"u-ann": 1, "u-bob": 1}, counts
