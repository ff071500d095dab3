"""A worker rebuilds its opportunities table from the changelog (the path
processor.stream.recovery speeds up): every key ends at its latest value,
tombstones delete, and a RocksDB worker restarted on its own data reads only
the changelog written since it stopped."""

from __future__ import annotations

import http.client
import re

import orjson
import pytest

from processor.stream.routing import Partitioner
from schemas import OpportunityState

from .conftest import NewStream, NewWorker
from .support import PARTITIONS, Kafka, WorkerProcess, wait_for

pytestmark = pytest.mark.integration

TOKEN = "tok-recovery-test"
OPPORTUNITIES = 2_400
PADDING = "x" * 1_500  # ~2 KB values, as real states: several fetches and store batches

Latest = dict[str, int | None]  # opportunity id -> the version it holds, None: deleted


def _state(opportunity_id: str, version: int, padding: str) -> bytes:
    state = OpportunityState(opportunity_id=opportunity_id,
                             fields={"amount": version, "note": padding})
    return state.model_dump_json(exclude_defaults=True).encode()


def _write(kafka: Kafka, topic: str, writes: list[tuple[str, int | None]], latest: Latest,
           padding: str = PADDING) -> None:
    """Writes each (id, version or None for a tombstone) to the changelog as
    the worker would (key = id, partition = the stream's partitioner)."""
    partition_of = Partitioner(PARTITIONS)
    kafka.produce_to(topic, [
        (partition_of(key), key.encode(),
         None if version is None else _state(key, version, padding))
        for key, version in writes
    ])
    latest.update(writes)


def _served(worker: WorkerProcess, ids: list[str]) -> Latest:
    """What the worker's table holds for each id, read through its API."""
    connection = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
    held: Latest = {}
    try:
        for key in ids:
            connection.request("GET", f"/v1/opportunities/{key}",
                               headers={"Authorization": f"Bearer {TOKEN}"})
            response = connection.getresponse()
            body = response.read()
            assert response.status in (200, 404), (key, response.status, body[:200])
            held[key] = orjson.loads(body)["fields"]["amount"] if response.status == 200 else None
    finally:
        connection.close()
    return held


ROW = re.compile(r"^\| (\S+)\s*\| (\d+)\s*\| (-?\d+)\s*\|")


def _start_offsets(log: str, topic: str) -> dict[int, int]:
    """Faust's "Reading Starts At - Active" table of the last start in the
    log: the changelog offset each partition's recovery starts after."""
    lines = log.split("===== start")[-1].splitlines()
    start = max(i for i, line in enumerate(lines) if "Reading Starts At - Active" in line)
    offsets: dict[int, int] = {}
    current = ""
    for line in lines[start + 1:]:
        if line.startswith("["):
            break
        match = ROW.match(line)
        if match is None:
            continue
        name, partition, offset = match.groups()
        current = current if name == "〃" else name
        if current == topic:
            offsets[int(partition)] = int(offset)
    return offsets


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_worker_recovers_the_latest_state_of_every_key_from_the_changelog(
    store: str, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    stream = new_stream()
    changelog = stream.changelog
    ids = [f"opp-{i:05d}" for i in range(OPPORTUNITIES)]
    latest: Latest = {}
    _write(kafka, changelog, [(key, 1) for key in ids], latest)
    _write(kafka, changelog, [(key, 2) for key in ids[::3]], latest)  # overwritten
    _write(kafka, changelog, [(key, None) for key in ids[::5]], latest)  # deleted
    _write(kafka, changelog, [(key, 3) for key in ids[::15]], latest)  # deleted, then back
    assert set(latest.values()) == {1, 2, 3, None}

    worker = new_worker("worker", stream, HYGIENE_STORE=store, HYGIENE_API_TOKEN=TOKEN)
    worker.start().wait_ready(timeout=90)
    assert _served(worker, ids) == latest
    assert "Recovery complete" in worker.log_text()

    assert worker.stop() == 0, worker.log_tail()
    ends = kafka.end_offsets(changelog)
    _write(kafka, changelog, [(key, 4) for key in ids[1::7]], latest)
    _write(kafka, changelog, [(key, None) for key in ids[2::11]], latest)
    worker.start().wait_ready(timeout=90)
    assert _served(worker, ids) == latest

    starts = _start_offsets(worker.log_text(), changelog)
    if store == "rocksdb://":
        # Local state is current up to the stop: only the tail is read.
        assert starts == {p: end - 1 for p, end in ends.items()}, worker.log_tail()
    else:
        assert starts == dict.fromkeys(range(PARTITIONS), -1), worker.log_tail()


def test_a_worker_joining_mid_recovery_leaves_every_key_with_its_owner(
    kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    """A rebalance while the first worker is still reading the changelog:
    records fetched for the old assignment must not reach the table (the
    consumer's own hand-over stops while Faust holds the flow), and each
    worker ends with the latest value of every key it owns."""
    stream = new_stream()
    changelog = stream.changelog
    ids = [f"opp-{i:06d}" for i in range(200_000)]  # several seconds of reading
    latest: Latest = {}
    _write(kafka, changelog, [(key, 1) for key in ids], latest, padding="y" * 100)
    _write(kafka, changelog, [(key, 2) for key in ids[::3]], latest, padding="y" * 100)
    _write(kafka, changelog, [(key, None) for key in ids[::5]], latest)

    a = new_worker("a", stream, HYGIENE_API_TOKEN=TOKEN).start()
    wait_for(lambda: "Restoring state from changelog topics" in a.log_text(), 60,
             "a reads the changelog", interval=0.05, explain=a.log_tail)
    b = new_worker("b", stream, HYGIENE_API_TOKEN=TOKEN).start()

    def split() -> bool:
        owners = kafka.assignment(stream.app_id, stream.changes)
        return len(owners) == 2 and all(owners.values())

    wait_for(split, 120, "a and b split the partitions",
             explain=lambda: a.log_tail() + b.log_tail())
    a.wait_ready(timeout=120)
    b.wait_ready(timeout=120)
    log = a.log_text()
    restoring = log.index("Restoring state from changelog topics")
    done = log.find("Done reading from changelog topics")
    assert "generation id" in log[restoring:done if done >= 0 else None], (
        "b joined only after a had read the whole changelog: nothing was tested")

    sample = ids[::97]  # overwritten, deleted and untouched keys on every partition
    assert _served(a, sample) == {key: latest[key] for key in sample}


def test_a_changelog_ending_in_a_transaction_marker_still_recovers(
    kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    """A record written to the changelog in a transaction (by an exactly-once
    tool, or a repair script) ends the partition with a commit marker: an
    offset that holds no record. Faust waits for it only in its own
    transaction mode; otherwise recovery never ends and /readyz stays 503."""
    stream = new_stream()
    changelog = stream.changelog
    latest: Latest = {}
    _write(kafka, changelog, [("opp-plain", 1)], latest)
    partition = Partitioner(PARTITIONS)("opp-tx")

    async def transactional() -> None:
        from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, unused-ignore]

        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap,
                                    transactional_id=f"{stream.app_id}-repair")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send(changelog, _state("opp-tx", 7, "y"), key=b"opp-tx",
                                    partition=partition)
        finally:
            await producer.stop()

    kafka.run(transactional())
    latest["opp-tx"] = 7

    worker = new_worker("worker", stream, HYGIENE_API_TOKEN=TOKEN)
    worker.start().wait_ready(timeout=60)
    assert _served(worker, ["opp-plain", "opp-tx"]) == latest
