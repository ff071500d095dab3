"""A worker whose recovery stops making progress exits for its supervisor to
restart it, and the restart recovers. The stall is real: the broker is
frozen (SIGSTOP) while the worker reads the changelog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.devstack.kafka import LocalKafka

from .support import Kafka, Stream, WorkerProcess, wait_for
from .test_recovery_integration import _write

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalKafka]:
    """Its own broker: this test freezes it."""
    kafka = LocalKafka()
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.resume()
        kafka.stop()


def test_a_stalled_recovery_exits_and_the_restart_recovers(
    broker: LocalKafka, tmp_path: Path
) -> None:
    with Kafka(broker.bootstrap_servers) as kafka:
        stream = Stream.unique(broker.bootstrap_servers, "stall")
        stream.create_topics(kafka)
        ids = [f"opp-{i:06d}" for i in range(150_000)]  # seconds of reading
        _write(kafka, stream.changelog, [(key, 1) for key in ids], {}, padding="y" * 100)

        worker = WorkerProcess("w", stream, tmp_path, HYGIENE_RECOVERY_STALL_SECONDS="4")
        worker.start()
        try:
            wait_for(lambda: "Restoring state from changelog topics" in worker.log_text(), 60,
                     "the worker reads the changelog", interval=0.05, explain=worker.log_tail)
            broker.pause()
            try:
                wait_for(lambda: not worker.running, 60, "the stalled worker exits",
                         explain=worker.log_tail)
            finally:
                broker.resume()
            assert worker.proc is not None and worker.proc.returncode != 0
            log = worker.log_text()
            assert "recovery stalled: no changelog record for" in log
            assert "still to recover" in log and stream.changelog in log
            assert "asyncio tasks:" in log

            worker.extra["HYGIENE_RECOVERY_STALL_SECONDS"] = "0"
            worker.start().wait_ready(timeout=180)
        finally:
            worker.cleanup()
