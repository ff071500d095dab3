"""processor.stream.commits on the real broker: a message an agent never
acked (as the fetcher drops one in a rebalance) holds its partition's
commit and is read again, whether the partition had a commit before the
hole or none at all. Faust alone commits past both, and they are lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import NewStream
from .support import Kafka, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_a_message_nobody_acked_is_read_again_before_the_commit_passes_it(
    kafka: Kafka, new_stream: NewStream, tmp_path: Path
) -> None:
    stream = new_stream()
    source, out = stream.names["overrides"], stream.names["override_log"]
    group = f"{stream.app_id}-gaps"
    kafka.produce_to(source, [(1, b"k", b"v")] * 5)
    log_path = tmp_path / "gaps.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GAPS_APP_ID": group,
           "GAPS_BOOTSTRAP": kafka.bootstrap, "GAPS_IN": source, "GAPS_OUT": out,
           "GAPS_DROP": "0:0,1:7", "GAPS_HEAL_AFTER": "1.0"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.stream.commits_app"], env=env,
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def explain() -> str:
            return f"committed {kafka.committed(group, source)}\n" + "\n".join(
                log_path.read_text(errors="replace").splitlines()[-40:])

        # Partition 1 has a commit before its hole (at 7); partition 0 has
        # none before its hole (at 0).
        wait_for(lambda: kafka.committed(group, source).get(1) == 5, 60,
                 "the first five of partition 1 committed", explain=explain)
        kafka.produce_to(source, [(0, b"k", b"v")] * 10 + [(1, b"k", b"v")] * 10)
        wait_for(lambda: kafka.committed(group, source) == {0: 10, 1: 15}, 60,
                 "everything committed", explain=explain)
        handled = {r.value.decode() for r in kafka.read(out)}
        expected = {f"0:{o}" for o in range(10)} | {f"1:{o}" for o in range(15)}
        assert handled == expected, f"never handled: {sorted(expected - handled)}"
        text = log_path.read_text(errors="replace")
        assert "offsets 0-0 were never handled" in text
        assert "offsets 7-7 were never handled" in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
