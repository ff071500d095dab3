"""``hygiene demo`` end to end, as a user runs it: its own Kafka, Redis and
worker, simulated traffic, outputs and report on disk, and nothing left
running afterwards, whether it finishes by itself or is stopped by a signal.

Each run starts its own broker (that is what users get), about 15 s apiece.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def _demo(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "processor.cli", "demo", "--out", str(out),
            "--opportunities", "40", *args]


def _env() -> dict[str, str]:
    # The demo never uses the suite's shared services; make sure of it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGIENE_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not reaped it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _assert_nothing_left(out: Path, stdout: str) -> dict[str, int]:
    pids: dict[str, int] = json.loads((out / "demo-pids.json").read_text())
    assert {"demo", "kafka", "redis", "worker"} <= set(pids), pids
    left = {name: pid for name, pid in pids.items() if _alive(pid)}
    assert not left, f"still running after the demo exited: {left}"
    assert "nothing left running" in stdout
    return pids


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_demo_once_streams_the_traffic_writes_outputs_and_stops_everything(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo-out"
    started = time.monotonic()
    proc = subprocess.run(
        _demo(out, "--rate", "0", "--once", "--duration", "60"),
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=150, check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert elapsed < 90, f"the demo took {elapsed:.0f}s"

    alerts = [json.loads(line) for line in _lines(out / "alerts.jsonl")]
    history = [json.loads(line) for line in _lines(out / "stage-history.jsonl")]
    assert alerts and history
    assert {a["kind"] for a in alerts} <= {"alert", "resolution"}
    # Time-driven rules only fire on a sweep: their alerts prove the sweep ran.
    assert {"stale_in_stage", "stale_no_activity"} & {a["rule_id"] for a in alerts}
    assert all(h["opportunity_id"] and h["transitioned_at"] for h in history)
    assert _lines(out / "crm-events.jsonl")
    report = (out / "audit-report.html").read_text()
    assert report.lstrip().lower().startswith("<!doctype html")

    # Plain lines when stdout is not a terminal: no cursor movement, no boxes.
    assert "\x1b[" not in proc.stdout and "╭" not in proc.stdout
    assert "traffic processed" in proc.stdout
    assert f"report   {out / 'audit-report.html'}" in proc.stdout
    # The stream and the offline replay of the same traffic agree.
    stream = next(line for line in proc.stdout.splitlines() if line.startswith("stream "))
    replay = next(line for line in proc.stdout.splitlines() if line.startswith("replay "))
    raised = sum(1 for a in alerts if a["kind"] == "alert")
    assert f"-> {raised} alerts" in stream and f": {raised} alerts" in replay

    _assert_nothing_left(out, proc.stdout)
    assert not list(tmp_path.glob("hygiene-data*")), "worker state belongs in a temporary dir"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_traffic_stops_everything_and_still_writes_the_report(
    tmp_path: Path, signum: signal.Signals
) -> None:
    out = tmp_path / "demo-out"
    proc = subprocess.Popen(
        _demo(out, "--rate", "80"),  # about 11 s of traffic: the signal lands mid-stream
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        events = out / "crm-events.jsonl"
        deadline = time.monotonic() + 90
        while not (events.exists() and events.stat().st_size > 20_000):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the traffic never started"
            time.sleep(0.2)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"{stdout}\n{stderr}"
    assert "stopped  by a signal, before the worker had processed" in stdout
    assert (out / "audit-report.html").stat().st_size > 0
    assert _lines(out / "stage-history.jsonl")
    _assert_nothing_left(out, stdout)
