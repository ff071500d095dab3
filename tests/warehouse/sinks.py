"""Waiting for a sink connector to catch up with its topic, for the
end-to-end tests: the condition is the connector's committed offsets, not
the table's contents, so a test never waits on what it is checking."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]

from processor.devstack.connect import LocalConnect
from tests.stream.support import Kafka, wait_for

CATCH_UP_SECONDS = 120.0


def _committed(kafka: Kafka, group: str, topic: str) -> dict[int, int]:
    async def fetch() -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    result: dict[int, int] = kafka.run(fetch())
    return result


def caught_up(kafka: Kafka, connect: LocalConnect, name: str, topic: str) -> None:
    """Wait until the sink has committed every offset of the topic.

    A sink task commits an offset only after the rows before it were
    written, so once the group stands at the end offsets the table holds
    everything that was produced.
    """
    ends = {p: o for p, o in kafka.end_offsets(topic).items() if o > 0}

    def done() -> bool:
        status = connect.connector_status(name)
        failed = [t for t in status["tasks"] if t["state"] == "FAILED"]
        assert not failed, failed[0].get("trace")
        committed = _committed(kafka, f"connect-{name}", topic)
        return all(committed.get(p, 0) >= o for p, o in ends.items())

    wait_for(done, CATCH_UP_SECONDS, f"sink {name} committing {ends}", interval=0.5)
