"""The alert policy against a real Redis: dedup window, budgets, thresholds,
snooze and its expiry, acknowledgements, atomicity of the batch script
across concurrent workers, one round trip per batch, release of an
unpublished batch, and the degraded mode when Redis goes away and comes back.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from processor.alerts import metrics
from processor.alerts.actions import AlertActions, InvalidAction, UnknownAlert
from processor.alerts.breaker import Breaker
from processor.alerts.shell import AlertPolicy
from processor.devstack import LocalRedis
from processor.devstack._proc import free_port
from schemas import Alert, AlertRecord, datetime_to_ms, ms_to_datetime

from .policy_support import T0, alert, resolution, rules, sent_commands

pytestmark = pytest.mark.integration
T = TypeVar("T")
NOW = datetime_to_ms(T0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def client(url: str) -> Redis:
    found: Redis = Redis.from_url(url, decode_responses=True, socket_timeout=2)
    return found


def make_policy(url: str, prefix: str, clock: Callable[[], int] | None = None,
                **overrides: Any) -> AlertPolicy:
    return AlertPolicy(client(url), rules(**overrides), prefix, clock=clock or (lambda: NOW))


def deliveries(records: list[AlertRecord]) -> dict[str, tuple[str, str | None]]:
    return {r.alert_id: (r.delivery, r.delivery_reason) for r in records if isinstance(r, Alert)}


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


def test_an_open_alert_is_not_repeated_within_the_window(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        policy = make_policy(redis_url, prefix)
        first = await policy.decide([alert("a1")])
        assert deliveries(first.records) == {"a1": ("realtime", None)}
        # The same alert again (a re-run batch) keeps its verdict, so a crash
        # between deciding and publishing loses nothing (consumers key on the
        # alert id); another id for the same opportunity and rule (a re-run
        # sweep) is a repeat and is not published.
        again = await policy.decide([alert("a1"), alert("a1b"), alert("x1", opp="006X")])
        assert deliveries(again.records) == {"a1": ("realtime", None), "x1": ("realtime", None)}
        # Its resolution passes, and closes the window: a new episode is news.
        closing = await policy.decide([resolution("a1"), alert("a2")])
        assert [r.alert_id for r in closing.records] == ["a1", "a2"]
        assert deliveries(closing.records) == {"a2": ("realtime", None)}
        # A stale resolution (replayed) does not close the newer episode's window.
        stale = await policy.decide([resolution("a1"), alert("a3")])
        assert [r.alert_id for r in stale.records] == ["a1"]
        await policy.client.aclose()

    suppressed = metrics.SUPPRESSED.labels(rule="missing_next_step", reason="duplicate")
    before = suppressed._value.get()
    run(scenario())
    assert suppressed._value.get() - before == 2


def test_the_window_expires(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        policy = make_policy(redis_url, prefix, dedup_window_ms=300)
        assert deliveries((await policy.decide([alert("a1")])).records) == {
            "a1": ("realtime", None)}
        assert (await policy.decide([alert("a2")])).records == []
        open_key = policy.keys.open("006A", "missing_next_step")
        await wait_until(lambda: _gone(policy.client, open_key), 10, "window expired")
        assert deliveries((await policy.decide([alert("a3")])).records) == {
            "a3": ("realtime", None)}
        await policy.client.aclose()

    run(scenario())


async def _gone(redis: Redis, key: str) -> bool:
    return await redis.exists(key) == 0


def test_over_the_daily_budget_alerts_go_to_the_digest(redis_url: str, prefix: str) -> None:
    now = [NOW]

    async def scenario() -> None:
        policy = make_policy(redis_url, prefix, lambda: now[0], daily_budget=2,
                             min_severity="medium", min_amount=1_000,
                             timezone="America/New_York")
        batch: list[AlertRecord] = [
            alert("a1", opp="o1"),
            alert("a2", opp="o2", severity="low"),  # below severity: digest, no budget used
            alert("a3", opp="o3", amount=10.0),  # below amount: digest, no budget used
            alert("a4", opp="o4"),
            alert("a5", opp="o5"),  # third eligible one: over budget
            alert("b1", opp="o6", owner="005OTHER"),  # another owner's budget
        ]
        found = deliveries((await policy.decide(batch)).records)
        assert found == {
            "a1": ("realtime", None), "a2": ("digest", "below_severity"),
            "a3": ("digest", "below_amount"), "a4": ("realtime", None),
            "a5": ("digest", "over_budget"), "b1": ("realtime", None),
        }
        # 15:00 UTC is 10:00 in New York; at 04:59 UTC the next day it is
        # still the same day there, at 05:00 a new one with a new budget.
        now[0] = NOW + int(timedelta(hours=13, minutes=59).total_seconds() * 1000)
        assert deliveries((await policy.decide([alert("a6", opp="o7")])).records) == {
            "a6": ("digest", "over_budget")}
        now[0] += 60_000
        assert deliveries((await policy.decide([alert("a7", opp="o8")])).records) == {
            "a7": ("realtime", None)}
        await policy.client.aclose()

    run(scenario())


def test_a_snoozed_alerts_repeats_go_to_the_digest_until_it_expires(
    redis_url: str, prefix: str
) -> None:
    async def scenario() -> None:
        clock_now = [NOW]
        policy = make_policy(redis_url, prefix, lambda: clock_now[0])
        actions = AlertActions(client(redis_url), prefix, 86_400_000,
                               clock=lambda: clock_now[0])
        await policy.decide([alert("a1")])
        until = ms_to_datetime(NOW + 800)
        status = await actions.snooze("a1", by="005REP", reason="customer on leave", until=until)
        assert (status.snoozed_by, status.snooze_reason, status.snoozed_until) == (
            "005REP", "customer on leave", until)
        assert status.snoozed_at == T0
        assert [(a.action, a.by, a.reason, a.until) for a in status.actions] == [
            ("snooze", "005REP", "customer on leave", until)]
        # The condition clears and comes back while the snooze runs.
        decided = await policy.decide([resolution("a1"), alert("a2"), alert("o2", opp="006B")])
        assert deliveries(decided.records) == {"a2": ("digest", "snoozed"),
                                               "o2": ("realtime", None)}
        snooze_key = policy.keys.snooze("006A", "missing_next_step")
        await wait_until(lambda: _gone(policy.client, snooze_key), 10, "snooze expired")
        decided = await policy.decide([resolution("a2"), alert("a3")])
        assert deliveries(decided.records) == {"a3": ("realtime", None)}
        await policy.client.aclose()
        await actions.client.aclose()

    before = metrics.SNOOZES._value.get()
    run(scenario())
    assert metrics.SNOOZES._value.get() - before == 1


def test_acknowledgements_are_recorded_and_timed(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        policy = make_policy(redis_url, prefix)
        clock_now = [NOW + 90_000]
        actions = AlertActions(client(redis_url), prefix, 86_400_000,
                               clock=lambda: clock_now[0])
        await policy.decide([alert("a1", severity="info")])
        assert await actions.status("nope") is None
        with pytest.raises(UnknownAlert):
            await actions.ack("nope", by="005REP")
        with pytest.raises(UnknownAlert):
            await actions.snooze("nope", "005REP", "why", ms_to_datetime(NOW + 10**6))
        with pytest.raises(InvalidAction, match="not in the future"):
            await actions.snooze("a1", "005REP", "why", ms_to_datetime(NOW))
        with pytest.raises(InvalidAction):
            await actions.ack("a1", by=" ")
        first = await actions.ack("a1", by="005REP")
        clock_now[0] += 60_000
        second = await actions.ack("a1", by="005MGR")
        assert (first.acknowledged_by, first.acknowledged_at) == (
            "005REP", ms_to_datetime(NOW + 90_000))
        assert (second.acknowledged_by, second.acknowledged_at) == (
            first.acknowledged_by, first.acknowledged_at)
        assert [(a.action, a.by) for a in second.actions] == [("ack", "005REP"), ("ack", "005MGR")]
        assert (second.delivery, second.delivery_reason) == ("digest", "below_severity")
        assert await actions.status("a1") == second
        await policy.client.aclose()
        await actions.client.aclose()

    acks, timed = metrics.ACKS._value.get(), _histogram_count()
    run(scenario())
    assert metrics.ACKS._value.get() - acks == 1
    assert _histogram_count() - timed == 1


def _histogram_count() -> float:
    for family in metrics.TIME_TO_ACK.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                return sample.value
    raise AssertionError("no histogram count")


def test_concurrent_workers_decide_each_alert_once_and_share_the_budget(
    redis_url: str, prefix: str
) -> None:
    """Eight policies, each with its own connection, decide overlapping
    batches at the same time: the script runs atomically, so every alert gets
    one verdict (the first decision; the others re-issue it) and one owner's
    budget is never overspent."""

    async def scenario() -> list[list[AlertRecord]]:
        policies = [make_policy(redis_url, prefix, daily_budget=10) for _ in range(8)]
        shared = [alert(f"s{i}", opp=f"o{i}") for i in range(20)]
        own = [[alert(f"w{w}-{i}", opp=f"w{w}o{i}") for i in range(5)] for w in range(8)]
        results = await asyncio.gather(*(
            p.decide(shared[w:] + own[w] + shared[:w]) for w, p in enumerate(policies)))
        for p in policies:
            await p.client.aclose()
        return [r.records for r in results]

    batches = run(scenario())
    published = Counter(r.alert_id for batch in batches for r in batch)
    assert set(published) == {f"s{i}" for i in range(20)} | {
        f"w{w}-{i}" for w in range(8) for i in range(5)}
    assert {published[f"s{i}"] for i in range(20)} == {8}
    verdicts = {(r.alert_id, r.delivery) for batch in batches for r in batch
                if isinstance(r, Alert)}
    assert len(verdicts) == len(published)  # one verdict per alert, however often decided
    delivered = Counter(delivery for _, delivery in verdicts)
    assert delivered == {"realtime": 10, "digest": 50}


def test_one_round_trip_per_batch_and_none_without_alerts(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        policy = make_policy(redis_url, prefix, daily_budget=100)
        await policy.decide([alert("warm", opp="warm")])  # the script is loaded
        assert await sent_commands(redis_url, lambda: policy.decide([])) == []
        batch: list[AlertRecord] = [alert(f"a{i}", opp=f"o{i}") for i in range(200)]
        batch.append(resolution("a0", opp="o0"))
        sent = await sent_commands(redis_url, lambda: policy.decide(batch))
        assert [command.split()[0] for command in sent] == ["EVALSHA"]
        await policy.client.aclose()

    run(scenario())


def test_an_unpublished_batch_is_released_and_decided_afresh(
    redis_url: str, prefix: str
) -> None:
    async def scenario() -> None:
        policy = make_policy(redis_url, prefix, daily_budget=1)
        await policy.decide([alert("held", opp="o0")])
        batch: list[AlertRecord] = [alert("a1", opp="o1"), alert("a2", opp="o2"),
                                    alert("dup", opp="o0")]
        first = await policy.decide(batch)
        assert deliveries(first.records) == {"a1": ("digest", "over_budget"),
                                             "a2": ("digest", "over_budget")}
        await first.release()
        await first.release()  # once only
        budget = await policy.client.get(policy.keys.budget("005REP", "2026-03-02"))
        assert budget == "1"
        again = await policy.decide(batch)
        assert deliveries(again.records) == deliveries(first.records)
        await policy.client.aclose()

    run(scenario())


def test_without_redis_alerts_flow_and_the_policy_recovers_by_itself(prefix: str) -> None:
    """First a Redis that accepts connections and never answers (the worst
    case: each try costs a full timeout), then none at all, then a real one
    on the same port, stopped and started again."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_server = LocalRedis(port=port)
    mute = socket.create_server(("127.0.0.1", port))

    async def scenario() -> None:
        ticks = [0.0]
        policy = AlertPolicy(
            Redis.from_url(url, decode_responses=True, socket_timeout=0.2,
                           socket_connect_timeout=0.2),
            rules(), prefix, clock=lambda: NOW, monotonic=lambda: ticks[0],
            breaker=Breaker(first_backoff=1.0, max_backoff=2.0),
        )
        # Redis mute: one timeout, then published unchecked; the gauge says so.
        started = time.monotonic()
        down = await policy.decide([alert("a1")])
        assert time.monotonic() - started < 1.0
        assert deliveries(down.records) == {"a1": ("realtime", "policy_unavailable")}
        assert metrics.REDIS_DEGRADED._value.get() == 1 and policy.degraded
        # Within the backoff Redis is not even tried: fifty batches cost less
        # than one timeout.
        started = time.monotonic()
        for _ in range(50):
            assert len((await policy.decide([alert("a1")])).records) == 1
        assert time.monotonic() - started < 0.2
        mute.close()
        redis_server.start()
        assert deliveries((await policy.decide([alert("a2", opp="o2")])).records) == {
            "a2": ("realtime", "policy_unavailable")}
        ticks[0] += 1.0  # the backoff has passed: Redis is asked again
        up = await policy.decide([alert("a1"), alert("a3", opp="o3", severity="info")])
        assert deliveries(up.records) == {"a1": ("realtime", None),
                                          "a3": ("digest", "below_severity")}
        assert metrics.REDIS_DEGRADED._value.get() == 0 and not policy.degraded
        # Stopped mid-way, and back: same again (the script is loaded anew).
        redis_server.halt()
        assert deliveries((await policy.decide([alert("a4", opp="o4")])).records) == {
            "a4": ("realtime", "policy_unavailable")}
        assert metrics.REDIS_DEGRADED._value.get() == 1
        redis_server.start()
        ticks[0] += 2.0
        assert deliveries((await policy.decide([alert("a5", opp="o5")])).records) == {
            "a5": ("realtime", None)}
        assert metrics.REDIS_DEGRADED._value.get() == 0
        await policy.client.aclose()

    try:
        run(scenario())
    finally:
        mute.close()
        redis_server.stop()
