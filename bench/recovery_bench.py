"""Recovery time for N opportunities from the table's changelog (target: <= 60 s for 1,000,000).

1. Builds realistic states (replayed simulation, as in ``sweep_bench.py``, and
   shares its cache) and clones them with new ids up to ``--opportunities``;
2. creates the worker's topics with ``hygiene topics create`` (4 partitions,
   the changelog ``{app_id}-opportunities-changelog`` compacted), and produces
   one record per opportunity into the changelog: key = id bytes, value =
   ``dump_state`` bytes, partition = ``processor.stream.routing.Partitioner``;
3. for each store in ``--stores``: starts ``hygiene worker`` with a fresh data
   directory and times, from launch, until ``/readyz`` says ready *and* the
   log says Faust's recovery finished ("Recovery complete"); also reads the recovery phases from the log
   timestamps and the worker's RSS;
4. optionally (``--sweep-after``, memory:// only) sends a sweep tick to every
   partition of the worker's changes topic and times until ``hygiene_sweeps_total`` reaches the
   partition count: the first in-worker sweep over everything recovered;
5. optionally (``--rocksdb-restart``) restarts the RocksDB worker on the same
   data directory: recovery from local state;
6. optionally (``--profile-seconds``) attaches ``py-spy record`` (raw
   collapsed stacks, idle samples, threads) to each worker once its log says
   "Restoring", for that many seconds; summarize with ``pyspy_summary.py``.

    python bench/recovery_bench.py --opportunities 1000000 --stores memory://,rocksdb://
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
from benchkit import (
    Broker,
    WorkerEnv,
    cpu_seconds,
    exit_on_sigterm,
    log,
    machine,
    metrics,
    ready,
    rss_mib,
    stop_process,
)
from sweep_bench import PREFIX, base_states

HERE = Path(__file__).resolve().parent
PROBE = False
PROFILE_SECONDS = 0
EXTRA_ENV: dict[str, str] = {}
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
MARKERS = {
    "restoring": "Restoring state from changelog topics",
    "done_reading": "Done reading from changelog topics",
    "recovery_complete": "Recovery complete",
    "worker_ready": "Worker ready",
}


def records(states: list[tuple[str, bytes]], n: int):  # type: ignore[no-untyped-def]
    count = len(states)
    for i in range(n):
        source_id, raw = states[i % count]
        if i < count:
            yield source_id, raw
            continue
        new_id = f"{source_id}~{i // count}"
        yield (
            new_id,
            PREFIX + orjson.dumps(new_id) + raw[len(PREFIX) + len(orjson.dumps(source_id)) :],
        )


async def produce_changelog(
    bootstrap: str, topic: str, states: list[tuple[str, bytes]], n: int, partitions: int,
    compression: str = "lz4",
) -> dict[str, float | int]:
    """Writes the changelog as the worker does: record batches through
    ``processor.stream.batches``, LZ4 unless ``compression`` is none."""
    from aiokafka import AIOKafkaProducer

    from processor.stream.batches import BatchSender
    from processor.stream.routing import Partitioner

    partition_of = Partitioner(partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=1_048_576,
        max_request_size=16 * 1_048_576,
    )
    await producer.start()
    sender = BatchSender(lambda: producer, lz4=compression == "lz4")
    started = time.perf_counter()
    total_bytes = 0
    per_partition = [0] * partitions
    try:
        grouped: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        held = 0
        for key, value in records(states, n):
            partition = partition_of(key)
            per_partition[partition] += 1
            total_bytes += len(value)
            grouped.setdefault((topic, partition), []).append((key.encode(), value))
            held += 1
            if held >= 20_000:
                await asyncio.gather(*(b.future for b in await sender.send(grouped)))
                grouped, held = {}, 0
        await asyncio.gather(*(b.future for b in await sender.send(grouped)))
    finally:
        await producer.stop()
    took = time.perf_counter() - started
    return {
        "records": n,
        "value_mib": round(total_bytes / 2**20),
        "seconds": round(took, 1),
        "per_partition": per_partition,
    }


def log_times(path: Path) -> dict[str, float]:
    """Epoch seconds of the first line holding each marker (last 'Worker ready'
    after reading is done)."""
    found: dict[str, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        match = STAMP.match(line)
        if not match:
            continue
        for name, marker in MARKERS.items():
            if marker in line and (name not in found or name == "worker_ready"):
                if name == "worker_ready" and "done_reading" not in found:
                    continue
                found[name] = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return found


REMAINING = re.compile(r"total remaining=(\d+)")


def remaining_progress(path: Path) -> list[tuple[float, int]]:
    """(epoch seconds, records remaining) from Faust's recovery stats lines."""
    points = []
    for line in path.read_text(errors="replace").splitlines():
        match, remaining = STAMP.match(line), REMAINING.search(line)
        if match and remaining:
            points.append(
                (datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp(), int(remaining[1]))
            )
    return points


def progress_rate(path: Path) -> float | None:
    points = remaining_progress(path)
    if len(points) < 2:
        return None
    (t0, r0), (t1, r1) = points[0], points[-1]
    return round((r0 - r1) / (t1 - t0), 1) if t1 > t0 else None


def run_worker(
    env: WorkerEnv, logs: Path, label: str, timeout: float, sweep_at_ms: int | None
) -> dict[str, object]:
    log_path = logs / f"{env.app_id}-{label}.log"
    launched_wall = time.time()
    launched = time.monotonic()
    if PROBE:
        proc = env.start_worker(
            log_path,
            command=[sys.executable, str(HERE / "instrumented_worker.py")],
            extra_env={"BENCH_PROBE_SWEEP": "1"},
        )
    else:
        proc = env.start_worker(log_path, extra_env=EXTRA_ENV)
    result: dict[str, object] = {"store": env.store, "label": label, "log": str(log_path)}
    transitions: list[tuple[float, bool | None]] = []
    last: bool | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        while True:
            if PROFILE_SECONDS and spy is None and "restoring" in log_times(log_path):
                profile = logs / f"{env.app_id}-{label}-pyspy.txt"
                result["profile"] = str(profile)
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid),
                     "--duration", str(PROFILE_SECONDS), "--rate", "100", "--idle", "--threads",
                     "--format", "raw", "--output", str(profile)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; see {log_path}")
            elapsed = time.monotonic() - launched
            if elapsed > timeout:
                result["timeout"] = True
                result["log_times"] = {
                    k: round(v - launched_wall, 2) for k, v in log_times(log_path).items()
                }
                tail = log_path.read_text(errors="replace").splitlines()[-5:]
                result["log_tail"] = tail
                result["records_per_s_from_log"] = progress_rate(log_path)
                points = remaining_progress(log_path)
                result["remaining_at_timeout"] = points[-1][1] if points else None
                log(f"{label}: not ready after {timeout:.0f}s")
                return result
            state = ready(env.url("/readyz"))
            if state != last:
                transitions.append((round(elapsed, 2), state))
                last = state
            # "Recovery complete" follows "Done reading ..." on a cold start and
            # comes alone when local RocksDB state is already current.
            if state and "recovery_complete" in log_times(log_path):
                break
            time.sleep(0.2)
        ready_at = time.monotonic() - launched
        times = {k: round(v - launched_wall, 2) for k, v in log_times(log_path).items()}
        result.update(
            {
                "ready_s": round(ready_at, 2),
                "readyz_transitions": transitions,
                "log_times_s_since_launch": times,
                "recovery_s": (
                    round(times["done_reading"] - times["restoring"], 2)
                    if "restoring" in times and "done_reading" in times
                    else None
                ),
                "records_per_s_from_log": progress_rate(log_path),
                "cpu_s": cpu_seconds(proc.pid),
                "rss_mib": round(rss_mib(proc.pid) or 0),
            }
        )
        log(f"{label}: ready in {ready_at:.1f}s; {times}")
        if sweep_at_ms is not None:
            result["sweep"] = sweep(env, proc.pid, sweep_at_ms)
        return result
    finally:
        stop_process(proc, grace=60)
        if spy is not None:  # py-spy writes its profile when the worker exits
            spy.wait(timeout=PROFILE_SECONDS + 30)


def sweep(env: WorkerEnv, pid: int, at_ms: int) -> dict[str, object]:
    from aiokafka import AIOKafkaProducer

    from processor.stream.messages import encode_sweep

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=env.bootstrap)
        await producer.start()
        try:
            for partition in range(env.partitions):
                await producer.send_and_wait(
                    env.topic("changes"), encode_sweep(at_ms), partition=partition
                )
        finally:
            await producer.stop()

    before = (metrics(env.url("/metrics")) or {}).get("hygiene_sweeps_total", 0.0)
    cpu0 = cpu_seconds(pid)
    started = time.monotonic()
    asyncio.run(send())
    while True:
        m = metrics(env.url("/metrics"), timeout=30) or {}
        if m.get("hygiene_sweeps_total", 0.0) >= before + env.partitions:
            break
        if time.monotonic() - started > 600:
            return {"timeout": True, "sweeps": m.get("hygiene_sweeps_total")}
        time.sleep(0.2)
    took = time.monotonic() - started
    outputs = {
        k: v
        for k, v in m.items()
        if k.startswith(("hygiene_alerts_total", "hygiene_resolutions_total"))
    }
    log(f"in-worker sweep over all partitions: {took:.1f}s")
    return {
        "seconds": round(took, 2),
        "cpu_s": round((cpu_seconds(pid) or 0) - (cpu0 or 0), 1),
        "alert_counters": outputs,
        "rss_mib": round(rss_mib(pid) or 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--source", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--stores", default="memory://,rocksdb://")
    parser.add_argument("--timeout", type=float, default=600.0, help="per worker start")
    parser.add_argument("--sweep-after", action="store_true")
    parser.add_argument(
        "--sweep-offset",
        type=float,
        default=300.0,
        help="sweep tick time: seconds after the simulated window's end "
        "(604800: a week later, when time-driven rules fire)",
    )
    parser.add_argument("--rocksdb-restart", action="store_true")
    parser.add_argument(
        "--compression",
        choices=["lz4", "none"],
        default="lz4",
        help="how the changelog is written (the worker's HYGIENE_COMPRESSION; lz4 since session 10)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the worker, e.g. Faust settings read "
        "from the environment (CONSUMER_MAX_FETCH_SIZE=16777216)",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run the worker under bench/instrumented_worker.py with a probe "
        "that logs what each sweep sees in the table",
    )
    parser.add_argument(
        "--profile-seconds",
        type=int,
        default=0,
        help="py-spy each worker for this many seconds from the start of its recovery",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    global PROBE, PROFILE_SECONDS
    PROBE = args.probe
    PROFILE_SECONDS = args.profile_seconds
    EXTRA_ENV.update(item.split("=", 1) for item in args.worker_env)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = Path(tempfile.mkdtemp(prefix="hygiene-recovery-logs-"))
    cache = Path(f"/tmp/hygiene-bench-base-{args.source}-{args.seed}.json")
    states, as_of, stats = base_states(args.source, args.seed, cache)
    log(f"{len(states):,} base states (mean {stats['state_bytes_mean']} B)")

    broker = Broker(heap="1g")
    summary: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "broker": broker.origin,
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": [],
    }
    data_dirs: list[str] = []
    try:
        app_id = f"bench-rec-{stamp}"
        base_env = WorkerEnv(
            bootstrap=broker.bootstrap,
            app_id=app_id,
            input_topic=f"{app_id}.crm-events",
            partitions=args.partitions,
        )
        base_env.create_topics()
        changelog = f"{app_id}-opportunities-changelog"
        produced = asyncio.run(
            produce_changelog(
                broker.bootstrap, changelog, states, args.opportunities, args.partitions,
                args.compression,
            )
        )
        summary["produced"] = produced
        log(f"produced {produced}")
        sweep_at = as_of + int(args.sweep_offset * 1000) if args.sweep_after else None
        for store in args.stores.split(","):
            data_dir = tempfile.mkdtemp(prefix=f"{app_id}-{store[:-3]}-")
            data_dirs.append(data_dir)
            env = WorkerEnv(
                bootstrap=broker.bootstrap,
                app_id=app_id,
                input_topic=base_env.input_topic,
                partitions=args.partitions,
                store=store,
                data_dir=data_dir,
                web_port=base_env.web_port,
            )
            label = store[:-3]
            run = run_worker(
                env, logs, label, args.timeout, sweep_at if store == "memory://" else None
            )
            summary["runs"].append(run)  # type: ignore[attr-defined]
            if store == "rocksdb://" and args.rocksdb_restart and not run.get("timeout"):
                summary["runs"].append(  # type: ignore[attr-defined]
                    run_worker(env, logs, "rocksdb-restart", args.timeout, None)
                )
    finally:
        broker.close()
        for d in data_dirs:
            shutil.rmtree(d, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"recovery-{stamp}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"result: {path}; worker logs: {logs}")


if __name__ == "__main__":
    main()
