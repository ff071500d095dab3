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
from .support import PARTITIONS, Kafka, WorkerProcess

pytestmark = pytest.mark.integration

TOKEN = "tok-recovery-test"
OPPORTUNITIES = 2_400
PADDING = "x" * 1_500  # ~2 KB values, as real states: several fetches and store batches

Latest = dict[str, int | None]  # opportunity id -> the version it holds, None: deleted


def _state(opportunity_id: str, version: int) -> bytes:
    state = OpportunityState(opportunity_id=opportunity_id,
                             fields={"amount": version, "note": PADDING})
    return state.model_dump_json(exclude_defaults=True).encode()


def _write(kafka: Kafka, topic: str, writes: list[tuple[str, int | None]], latest: Latest) -> None:
    """Writes each (id, version or None for a tombstone) to the changelog as
    the worker would (key = id, partition = the stream's partitioner)."""
    partition_of = Partitioner(PARTITIONS)
    kafka.produce_to(topic, [
        (partition_of(key), key.encode(), None if version is None else _state(key, version))
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
