"""The state processor with the alert policy on (a real Redis, no Kafka):
alerts decided in one call per batch and none without alerts, a failed
publish releasing its decision, a redelivered batch not notifying twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from processor.alerts.shell import AlertPolicy
from processor.core.engine import Engine
from processor.rules import default_rules
from processor.stream import messages
from processor.stream.native_state import NativeStateProcessor
from processor.stream.state import StateProcessor, Topics
from schemas import OpportunityChange
from tests.alerts.policy_support import rules as policy_rules
from tests.alerts.policy_support import sent_commands
from tests.builders import HEALTHY_DISCOVERY, change

pytestmark = pytest.mark.integration
TOPICS = Topics("t.alerts", "t.stage-history", "t.commands", "t.dead-letter")
Out = list[tuple[str, bytes | None, bytes]]


class Broker:
    """A publish function that fails while ``down`` and keeps what it was given."""

    def __init__(self) -> None:
        self.down = False
        self.published: Out = []

    async def __call__(self, records: Out) -> None:
        if self.down:
            raise ConnectionError("broker unavailable")
        self.published.extend(records)

    def alerts(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _, v in self.published if t == TOPICS.alerts]


def batch(*changes: OpportunityChange) -> messages.ChangeBatch:
    decoded = messages.decode(messages.encode_changes(list(changes)))
    assert isinstance(decoded, messages.ChangeBatch)
    return decoded


def without_next_step(opp: str) -> OpportunityChange:
    fields = {k: v for k, v in HEALTHY_DISCOVERY.items() if k not in ("next_step",
                                                                      "next_step_date")}
    return change(0, opp=opp, event_id=f"ev-{opp}", **fields)


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_alerts_pass_the_policy_once_per_batch_and_a_failed_publish_releases_them(
    redis_url: str, native: bool,
) -> None:
    prefix = f"t:state:{uuid.uuid4().hex[:8]}:"

    async def scenario() -> None:
        client: Redis = Redis.from_url(redis_url, decode_responses=True)
        policy = AlertPolicy(client, policy_rules(min_severity="info"), prefix)
        processor: StateProcessor | NativeStateProcessor = (
            NativeStateProcessor(default_rules(), TOPICS, 4, policy=policy) if native
            else StateProcessor(Engine(default_rules()), TOPICS, 4, policy=policy))
        table: dict[bytes, bytes] = {}
        broker = Broker()
        alerting = batch(without_next_step("006A"), without_next_step("006B"))

        # No alert in the batch: Redis is not asked at all.
        quiet = batch(change(0, opp="006Q", **HEALTHY_DISCOVERY))
        sent = await sent_commands(
            redis_url, lambda: processor.handle_changes(quiet, 0, table, broker))
        assert sent == [] and broker.published

        # The broker fails: the decision is released, the table untouched.
        broker.down = True
        with pytest.raises(ConnectionError):
            await processor.handle_changes(alerting, 0, table, broker)
        assert b"006A" not in table

        # The batch again: decided afresh (one call), published in real time.
        broker.down = False
        sent = await sent_commands(
            redis_url, lambda: processor.handle_changes(alerting, 0, table, broker))
        assert [c.split()[0] for c in sent] == ["EVALSHA"]
        first = broker.alerts()
        assert [(a["opportunity_id"], a["delivery"]) for a in first] == [
            ("006A", "realtime"), ("006B", "realtime")]

        # Redelivered after it was published (a restart before the commit):
        # the states are written again and the alerts re-issued under the
        # same ids with the same verdicts (a keyed consumer absorbs them), so
        # a kill between the decision and the publish could not lose them.
        processor.forget()
        table.clear()
        await processor.handle_changes(alerting, 0, table, broker)
        assert broker.alerts() == first + first
        assert set(table) == {b"006A", b"006B"}
        await client.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 60))
