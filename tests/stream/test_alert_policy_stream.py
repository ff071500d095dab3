"""The alert policy in the stream, on the real broker and a real Redis:
two workers share it, an owner's budget overflows into the digest, and the
stream keeps flowing while Redis is stopped and restarted.

The offline replay is the oracle for which alerts the engine raises; the
policy then decides which of them are published, and how.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from processor.alerts.actions import AlertActions
from processor.devstack import LocalRedis
from processor.devstack._proc import free_port
from processor.rules import RuleSet
from processor.simulate import simulate
from schemas import Alert, AlertStatus, Resolution

from .conftest import NewStream, NewWorker
from .support import (
    Kafka,
    alert_records,
    drain,
    keyed,
    replay,
)

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 60
DRAIN_TIMEOUT = 120.0


def policy_env(redis_url: str, prefix: str, **settings: str) -> dict[str, str]:
    return {
        "HYGIENE_ALERT_POLICY": "true",
        "HYGIENE_REDIS_URL": redis_url,
        "HYGIENE_ALERT_POLICY_PREFIX": prefix,
        "HYGIENE_ALERT_MIN_SEVERITY": "info",
        "HYGIENE_ALERT_DAILY_BUDGET": "1000000",
        **settings,
    }


def statuses(redis_url: str, prefix: str, ids: set[str]) -> dict[str, AlertStatus]:
    async def read() -> dict[str, AlertStatus]:
        actions = AlertActions.from_settings(_settings(redis_url, prefix))
        found = {i: await actions.status(i) for i in ids}
        await actions.client.aclose()
        return {i: s for i, s in found.items() if s is not None}

    return asyncio.run(read())


def _settings(redis_url: str, prefix: str) -> Any:
    from processor.settings import Settings

    return Settings(redis_url=redis_url, alert_policy_prefix=prefix)


def oracle_alerts(rules: RuleSet, messages: list[tuple[bytes | None, bytes]]) -> dict[str, Alert]:
    found = {a.alert_id: a for a in replay(rules, messages).alerts if isinstance(a, Alert)}
    assert found
    return found


def test_two_workers_sharing_the_policy_publish_each_alert_once(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker, redis_url: str
) -> None:
    """Two applications read the same input and decide every alert alike:
    an alert decided before keeps its verdict (so a worker killed between
    deciding and publishing loses nothing: the re-run re-issues it), and a
    repeat of an open alert for the same deal and rule is suppressed by both.
    So each alert id is published by both with one verdict, counted once
    against the budget, and consumers keyed on alert_id see it once."""
    sim = simulate(opportunities=30, days=DAYS, seed=611, fmt="generic", start=START, rules=rules)
    messages = keyed(sim)
    expected = oracle_alerts(rules, messages)
    prefix = f"t:two-workers:{uuid.uuid4().hex[:8]}:"
    env = policy_env(redis_url, prefix)
    first = new_stream(**env)
    second = new_stream(**env)
    second.names["inputs"] = first.input
    a = new_worker("a", first).start()
    b = new_worker("b", second).start()
    a.wait_ready()
    b.wait_ready()
    kafka.produce(first.input, messages)
    drain(first, kafka, a, b, timeout=DRAIN_TIMEOUT)
    drain(second, kafka, a, b, timeout=DRAIN_TIMEOUT)

    published = [r for s in (first, second) for r in alert_records(kafka.read(s.alerts))]
    alerts = [r for r in published if isinstance(r, Alert)]
    counts = Counter(r.alert_id for r in alerts)
    assert counts and set(counts.values()) == {2}, counts.most_common(3)
    assert set(counts) <= set(expected)
    verdicts = {(r.alert_id, r.delivery, r.delivery_reason) for r in alerts}
    assert len(verdicts) == len(counts)  # both copies carry the same verdict
    assert {(r.delivery, r.delivery_reason) for r in alerts} == {("realtime", None)}
    missing = set(expected) - set(counts)
    found = statuses(redis_url, prefix, missing)
    for alert_id in missing:
        status = found[alert_id]
        assert status.delivery == "suppressed" and status.duplicate_of in counts
        repeated = expected[status.duplicate_of]
        assert (repeated.opportunity_id, repeated.rule_id) == (status.opportunity_id,
                                                               status.rule_id)
    # A repeat is suppressed by both workers.
    suppressed = (a.metric("hygiene_alerts_suppressed_total")
                  + b.metric("hygiene_alerts_suppressed_total"))
    assert suppressed == 2 * len(missing)
    # Resolutions always pass, on both.
    for s in (first, second):
        resolutions = {r.alert_id for r in alert_records(kafka.read(s.alerts))
                       if isinstance(r, Resolution)}
        assert resolutions == {r.alert_id for r in replay(rules, messages).alerts
                               if isinstance(r, Resolution)}


def test_over_the_daily_budget_alerts_are_published_for_the_digest(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker, redis_url: str
) -> None:
    sim = simulate(opportunities=60, days=DAYS, seed=612, fmt="generic", start=START, rules=rules)
    messages = keyed(sim)
    expected = oracle_alerts(rules, messages)
    prefix = f"t:budget:{uuid.uuid4().hex[:8]}:"
    stream = new_stream(**policy_env(redis_url, prefix, HYGIENE_ALERT_DAILY_BUDGET="1"))
    worker = new_worker("worker", stream).start().wait_ready()
    started = datetime.now(UTC).date()
    kafka.produce(stream.input, messages)
    drain(stream, kafka, worker, timeout=DRAIN_TIMEOUT)
    days = {started, datetime.now(UTC).date()}

    alerts = [r for r in alert_records(kafka.read(stream.alerts)) if isinstance(r, Alert)]
    realtime = Counter(r.owner_id for r in alerts if r.delivery == "realtime")
    owners = {r.owner_id for r in alerts}
    assert realtime and all(n <= len(days) for n in realtime.values()), realtime
    assert set(realtime) == owners  # every owner got their first one in real time
    over = [r for r in alerts if r.delivery_reason == "over_budget"]
    assert len(over) == len(alerts) - sum(realtime.values()) > 0
    assert {r.delivery for r in over} == {"digest"}
    assert worker.metric("hygiene_alerts_digest_only_total") == len(over)
    # Nothing lost: what was not published is a repeat of something that was.
    published = {r.alert_id for r in alerts}
    missing = set(expected) - published
    assert all(s.delivery == "suppressed" and s.duplicate_of in published
               for s in statuses(redis_url, prefix, missing).values())
    assert len(statuses(redis_url, prefix, missing)) == len(missing)


def test_redis_stopped_and_restarted_mid_stream(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    """The stream flows throughout: while Redis is down every alert is
    published (realtime, policy_unavailable) and the degraded gauge is 1;
    once it is back the worker, never restarted, uses it again by itself."""
    sim = simulate(opportunities=120, days=DAYS, seed=613, fmt="generic", start=START,
                   rules=rules)
    messages = keyed(sim)
    expected = oracle_alerts(rules, messages)
    size = len(messages) // 3 + 1
    chunks = [messages[i:i + size] for i in range(0, len(messages), size)]
    assert len(chunks) == 3
    server = LocalRedis(port=free_port()).start()
    try:
        stream = new_stream(**policy_env(
            server.url, "t:outage:", HYGIENE_REDIS_SOCKET_TIMEOUT_SECONDS="0.2",
            HYGIENE_ALERT_POLICY_BACKOFF_MAX_SECONDS="0.5"))
        worker = new_worker("worker", stream).start().wait_ready()

        seen: set[tuple[int, int]] = set()

        def new_alerts() -> list[Alert]:
            """Alerts published since the last call."""
            fresh = [r for r in kafka.read(stream.alerts) if (r.partition, r.offset) not in seen]
            seen.update((r.partition, r.offset) for r in fresh)
            return [r for r in alert_records(fresh) if isinstance(r, Alert)]

        kafka.produce(stream.input, chunks[0])
        drain(stream, kafka, worker, timeout=DRAIN_TIMEOUT)
        before = new_alerts()
        assert before and all(r.delivery_reason is None for r in before)
        assert worker.metric("hygiene_redis_degraded") == 0

        server.halt()
        kafka.produce(stream.input, chunks[1])
        drain(stream, kafka, worker, timeout=DRAIN_TIMEOUT)  # while Redis is down
        during = new_alerts()
        assert during and {r.delivery_reason for r in during} == {"policy_unavailable"}
        assert worker.metric("hygiene_redis_degraded") == 1
        assert "alert policy degraded" in worker.log_text()

        server.start()
        pieces = [chunks[2][i:i + 40] for i in range(0, len(chunks[2]), 40)]
        for piece in pieces:
            kafka.produce(stream.input, piece)
            drain(stream, kafka, worker, timeout=DRAIN_TIMEOUT)
            if worker.metric("hygiene_redis_degraded") == 0:
                break
        assert worker.metric("hygiene_redis_degraded") == 0, worker.log_tail()
        for piece in pieces:  # the rest (and, again, what was sent: repeats)
            kafka.produce(stream.input, piece)
        drain(stream, kafka, worker, timeout=DRAIN_TIMEOUT)
        after = new_alerts()
        assert "alert policy recovered" in worker.log_text()
        assert worker.running and worker.starts == 1
        # The restarted Redis (empty: no persistence) holds the decisions made since.
        decided = statuses(server.url, "t:outage:", {r.alert_id for r in after})
        assert decided and all(decided[r.alert_id].delivery in ("realtime", "digest")
                               for r in after if r.delivery_reason is None)

        # Nothing lost; what is missing was suppressed as a repeat.
        ids = Counter(r.alert_id for r in before + during + after)
        assert set(ids) <= set(expected)
        suppressed = worker.metric("hygiene_alerts_suppressed_total")
        assert len(set(expected) - set(ids)) <= suppressed
    finally:
        server.stop()
