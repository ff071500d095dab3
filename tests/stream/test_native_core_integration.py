"""Both engines through the real broker: a worker on the Python engine
(``HYGIENE_NATIVE_CORE=false``) and one on the native core (the default),
each with its own topics, fed the same traffic and then the same sweep,
publish the same alerts, stage history and close-out commands, record for
record per opportunity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processor.core.clock import to_ms
from processor.rules import RuleSet
from processor.simulate import simulate
from processor.stream.messages import encode_sweep

from .conftest import NewStream, NewWorker
from .support import PARTITIONS, Kafka, Rec, drain, keyed, wait_for

pytestmark = pytest.mark.integration


def by_key(records: list[Rec]) -> dict[bytes | None, list[bytes]]:
    """Per opportunity, its records in order (the order across partitions
    depends on batching; within one opportunity it may not)."""
    out: dict[bytes | None, list[bytes]] = {}
    for record in records:
        out.setdefault(record.key, []).append(record.value)
    return out


def test_the_python_and_the_native_engine_publish_the_same(
    rules: RuleSet, kafka: Kafka, new_stream: NewStream, new_worker: NewWorker
) -> None:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=150)
    sim = simulate(opportunities=60, days=60, seed=404, fmt="mixed", start=start, rules=rules)
    messages = keyed(sim)
    engines = {"python": "false", "native": "true"}
    streams = {name: new_stream(HYGIENE_NATIVE_CORE=flag) for name, flag in engines.items()}
    workers = {name: new_worker(name, stream).start() for name, stream in streams.items()}
    for name, worker in workers.items():
        worker.wait_ready()
        wait_for(lambda w=worker, n=name: f"the {n} rules engine" in w.log_text().replace(
            "Python", "python"), 30, f"{name} worker says its engine", explain=worker.log_tail)
    for stream in streams.values():
        kafka.produce(stream.input, messages)
    for name, stream in streams.items():
        drain(stream, kafka, workers[name])
    # One sweep of every partition at the same time: time-driven alerts and
    # close-out commands too, not only what events raised.
    sweep = encode_sweep(to_ms(start + timedelta(days=100)))
    for name, stream in streams.items():
        kafka.produce_to(stream.changes, [(p, b"", sweep) for p in range(PARTITIONS)])
        drain(stream, kafka, workers[name])

    python, native = streams["python"], streams["native"]
    for topic in ("alerts", "history", "commands"):
        left = by_key(kafka.read(getattr(python, topic) if topic != "commands"
                                 else python.names["commands"]))
        right = by_key(kafka.read(getattr(native, topic) if topic != "commands"
                                  else native.names["commands"]))
        assert left, f"no {topic} to compare"
        assert set(right) == set(left), topic
        assert right == left, topic
    assert kafka.count(native.dead_letter) == kafka.count(python.dead_letter) == 0
