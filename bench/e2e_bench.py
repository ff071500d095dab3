"""End to end through a real broker: the hygiene worker against the plain loop.

One run of this script:

1. starts a LocalKafka (or uses HYGIENE_KAFKA_BOOTSTRAP), generates simulated
   CRM traffic in memory (``processor.simulate.simulate``, mixed formats) and
   produces it ONCE into a fresh 4-partition input topic, keyed by
   opportunity id; counts the normalized changes it carries by decoding every
   message offline (what ``hygiene_changes_applied_total`` must reach);
2. alternates, ``--runs`` times each: the plain aiokafka loop
   (``bench/raw_loop.py``, own process, own consumer group) and ``hygiene
   worker`` (own process, own app id and internal/output topics, the same
   input topic, sweeps effectively off);
3. with ``--policy on`` every worker run has the Redis alert policy in its
   path (``HYGIENE_ALERT_POLICY=true``, a LocalRedis or
   ``HYGIENE_TEST_REDIS``, a fresh key prefix per run); with ``--policy
   both`` each round runs the worker without and then with it, so both
   ratios to the plain loop come from the same session;
4. optionally (``--profile-seconds``) runs the worker once more under
   ``py-spy record`` (raw collapsed stacks, idle samples included) and
   summarizes the profile with ``bench/pyspy_summary.py``.

Worker throughput is timed from the first increment of its input counter
(startup, group join and recovery excluded) until every input message is
counted AND every change applied; the messages already counted at that first
observation are subtracted. CPU is utime+stime from /proc over the same
window.

    python bench/e2e_bench.py --opportunities 9000 --runs 2 --profile-seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchkit import (
    Broker,
    WorkerEnv,
    alter_topic_config,
    cpu_seconds,
    create_topics,
    exit_on_sigterm,
    log,
    machine,
    metrics,
    rss_mib,
    stop_process,
    thread_cpu_seconds,
)
from traffic import add_traffic_arguments, simulated

HERE = Path(__file__).resolve().parent
ENGINES = {
    "native": {"HYGIENE_NATIVE_CORE": "true", "HYGIENE_NATIVE_THREADS": "true"},
    "native-unpacked": {"HYGIENE_NATIVE_CORE": "true", "HYGIENE_PACK_CHANGES": "false"},
    "native-uncompressed": {"HYGIENE_NATIVE_CORE": "true", "HYGIENE_COMPRESSION": "none"},
    "native-inline": {"HYGIENE_NATIVE_CORE": "true", "HYGIENE_NATIVE_THREADS": "false"},
    "python": {"HYGIENE_NATIVE_CORE": "false", "HYGIENE_NATIVE_THREADS": "true"},
}
"""``--engine`` names: the worker's environment for each."""
INPUT_METRIC = "hygiene_input_messages_total"
APPLIED_METRIC = "hygiene_changes_applied_total"


def generate(args: argparse.Namespace) -> tuple[list[bytes], list[str], int]:
    from processor.rules import default_rules
    from processor.sources.detect import decode
    from processor.sources.mapping import FieldMappings

    rules = default_rules()
    started = time.perf_counter()
    sim = simulated(args, rules)
    events, keys = sim.events, sim.keys
    if args.messages and len(events) > args.messages:
        events, keys = events[: args.messages], keys[: args.messages]
    mappings = FieldMappings.with_overrides(dict(rules.field_mapping.items()))
    changes = rejects = 0
    for raw in events:
        result = decode(raw, mappings)
        changes += len(result.changes)
        rejects += len(result.rejects)
    log(
        f"generated {len(events):,} messages ({sum(map(len, events)) / len(events):.0f} B mean) "
        f"for {len(set(keys)):,} keys carrying {changes:,} changes ({rejects} rejects) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return events, keys, changes


def produce(bootstrap: str, topic: str, events: list[bytes], keys: list[str]) -> None:
    from processor.settings import Settings
    from processor.stream.produce import produce as produce_messages

    started = time.perf_counter()
    count = asyncio.run(
        produce_messages(
            Settings(kafka_bootstrap=bootstrap),
            ((topic, k.encode(), e) for k, e in zip(keys, events, strict=True)),
        )
    )
    log(f"produced {count:,} messages into {topic} in {time.perf_counter() - started:.1f}s")


def raw_run(
    bootstrap: str, topic: str, expected: int, tag: str, broker_pid: int | None
) -> dict[str, float | int]:
    out_topic = f"{tag}.raw-out"
    create_topics(bootstrap, {out_topic: 4})
    broker_cpu = cpu_seconds(broker_pid)
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "raw_loop.py"),
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--out-topic",
            out_topic,
            "--group",
            f"{tag}.raw",
            "--expected",
            str(expected),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"raw loop failed:\n{proc.stderr}")
    result: dict[str, float | int] = json.loads(proc.stdout.strip().splitlines()[-1])
    if broker_cpu is not None:
        # The whole subprocess lifetime (start-up included): an upper bound.
        result["broker_cpu_share_upper"] = round(
            (cpu_seconds(broker_pid) - broker_cpu) / (time.monotonic() - started), 3
        )  # type: ignore[operator]
    log(f"raw loop: {result}")
    return result


async def _end_offsets(bootstrap: str, topics: list[str], prefix: str = "") -> dict[str, int]:
    """Records per topic: ``topics``, then every other topic whose name
    starts with ``prefix`` (the app's changelogs and regroup topics: where
    the broker's share of the run goes)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        if prefix:
            await consumer._client.force_metadata_update()
            known = await consumer.topics()
            topics = topics + sorted(t for t in known if t.startswith(prefix) and t not in topics)
        totals = {}
        for topic in topics:
            parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            ends = await consumer.end_offsets(tps) if tps else {}
            totals[topic] = sum(ends.values())
        return totals
    finally:
        await consumer.stop()


def worker_run(
    bootstrap: str,
    topic: str,
    n_messages: int,
    n_changes: int,
    tag: str,
    broker_pid: int | None,
    logs: Path,
    timeout: float,
    changes_max_bytes: int,
    profile: tuple[int, Path] | None = None,
    instrument: Path | None = None,
    extra_env: dict[str, str] | None = None,
    store: str = "memory://",
) -> dict[str, object]:
    env = WorkerEnv(
        bootstrap=bootstrap,
        app_id=tag,
        input_topic=topic,
        data_dir=tempfile.mkdtemp(prefix=f"{tag}-"),
        store=store,
    )
    env.create_topics()
    if changes_max_bytes:
        # Workaround: ingest writes one message per partition per fetch of up
        # to 5,000 inputs, ~1-3 MB, over the broker's 1 MB default (the
        # worker crashes with MessageSizeTooLargeError otherwise).
        alter_topic_config(
            bootstrap, env.topic("changes"), {"max.message.bytes": str(changes_max_bytes)}
        )
    log_path = logs / f"{tag}.log"
    launched = time.monotonic()
    if instrument is not None:
        proc = env.start_worker(
            log_path,
            command=[sys.executable, str(HERE / "instrumented_worker.py")],
            extra_env={"BENCH_INSTRUMENT_OUT": str(instrument), **(extra_env or {})},
        )
    else:
        proc = env.start_worker(log_path, extra_env=extra_env)
    url = env.url("/metrics")
    first: tuple[float, float, float, float | None, float | None] | None = None
    ingest_done: float | None = None
    last_progress = (0.0, 0.0, time.monotonic())
    spy: subprocess.Popen[bytes] | None = None
    timeline: list[tuple[float, int, int, float | None]] = []
    last_sample = 0.0
    result: dict[str, object] = {"app_id": tag, "log": str(log_path)}
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; see {log_path}")
            now = time.monotonic()
            if now - launched > timeout:
                raise TimeoutError(f"worker not done after {timeout:.0f}s; see {log_path}")
            m = metrics(url)
            if m is None:
                time.sleep(0.1)
                continue
            now = time.monotonic()
            inp, applied = m.get(INPUT_METRIC, 0.0), m.get(APPLIED_METRIC, 0.0)
            if first is None and (inp > 0 or applied > 0):
                first = (now, inp, applied, cpu_seconds(proc.pid), cpu_seconds(broker_pid))
                threads0 = thread_cpu_seconds(proc.pid)
                result["startup_s"] = round(now - launched, 2)
                if profile is not None:
                    seconds, out = profile
                    spy = subprocess.Popen(
                        [
                            str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "--pid",
                            str(proc.pid),
                            "--duration",
                            str(seconds),
                            "--rate",
                            "100",
                            "--idle",
                            "--threads",
                            "--format",
                            "raw",
                            "--output",
                            str(out),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
            if ingest_done is None and inp >= n_messages:
                ingest_done = now
            if now - last_sample >= 1.0:
                timeline.append(
                    (round(now - launched, 1), int(inp), int(applied), cpu_seconds(proc.pid))
                )
                last_sample = now
            if (inp, applied) != last_progress[:2]:
                last_progress = (inp, applied, now)
            if inp >= n_messages and applied >= n_changes:
                break
            if first is not None and now - last_progress[2] > 30:
                raise RuntimeError(
                    f"no progress for 30s at input={inp:.0f} applied={applied:.0f}"
                    f" (want {n_messages}/{n_changes}); see {log_path}"
                )
            # Every scrape renders the whole /metrics page on the worker's
            # event loop (about 4% of its busy time at 20 a second): fine-
            # grained only where a time is read, the start and the end.
            time.sleep(0.05 if first is None or ingest_done is not None else 0.25)
        done, cpu_done, broker_done = now, cpu_seconds(proc.pid), cpu_seconds(broker_pid)
        threads = thread_cpu_seconds(proc.pid)
        assert first is not None
        t0, inp0, applied0, cpu0, broker0 = first
        wall = done - t0
        # Work already done when the first increment was seen: the further
        # of the two counters (ingest runs ahead of the agent, but the agent
        # can also count a batch before ingest's counter moves).
        done_share = max(inp0 / n_messages, applied0 / n_changes)
        result.update(
            {
                "messages": n_messages,
                "changes": int(applied),
                "first_observed": [int(inp0), int(applied0)],
                "seconds": round(wall, 3),
                "events_per_s": round(n_messages * (1 - done_share) / wall, 1),
                "changes_per_s": round(n_changes * (1 - done_share) / wall, 1),
                "ingest_seconds": round((ingest_done or done) - t0, 3),
                "cpu_share": round((cpu_done - cpu0) / wall, 3) if cpu0 is not None else None,  # type: ignore[operator]
                "broker_cpu_share": (
                    round((broker_done - broker0) / wall, 3)  # type: ignore[operator]
                    if broker0 is not None
                    else None
                ),
                "rss_mib": rss_mib(proc.pid),
                "thread_cpu_s": {
                    name: round(seconds - threads0.get(name, 0.0), 2)
                    for name, seconds in sorted(threads.items())
                    if seconds - threads0.get(name, 0.0) >= 0.01
                },
            }
        )
        result["timeline_t_input_applied_cpu"] = timeline
        if spy is not None:
            _, err = spy.communicate(timeout=120)
            result["py_spy"] = err.decode(errors="replace").strip().splitlines()[-3:]
        time.sleep(2.5)
        if extra_env and extra_env.get("HYGIENE_ALERT_POLICY") == "true":
            result["policy"] = _policy_counts(metrics(url) or {})
        if instrument is not None and instrument.is_file():
            result["instrument"] = json.loads(instrument.read_text())
        result["outputs"] = asyncio.run(
            _end_offsets(
                bootstrap,
                [
                    env.topic("changes"),
                    env.topic("alerts"),
                    env.topic("stage_history"),
                    env.topic("commands"),
                    env.topic("dead_letter"),
                ],
                prefix=env.app_id,
            )
        )
        return result
    finally:
        if spy is not None and spy.poll() is None:
            spy.terminate()
            spy.wait(timeout=30)
        stop_process(proc)
        log(
            f"worker {tag}: "
            f"{ {k: v for k, v in result.items() if k not in ('log', 'timeline_t_input_applied_cpu')} }"
        )


def _policy_counts(m: dict[str, float]) -> dict[str, float]:
    """What the policy did in one run, summed over labels."""

    def total(name: str) -> float:
        return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))

    calls = total("hygiene_alert_policy_seconds_count")
    return {
        "decide_calls": calls,
        "decide_mean_ms": round(1000 * total("hygiene_alert_policy_seconds_sum") / calls, 3)
        if calls else 0.0,
        "suppressed": total("hygiene_alerts_suppressed_total"),
        "digest_only": total("hygiene_alerts_digest_only_total"),
        "alerts_published": total("hygiene_alerts_total"),
        "redis_degraded": total("hygiene_redis_degraded"),
    }


class PolicyRedis:
    """The Redis the policy runs use: HYGIENE_TEST_REDIS, else a LocalRedis."""

    def __init__(self) -> None:
        self.local = None
        url = os.environ.get("HYGIENE_TEST_REDIS")
        if not url:
            from processor.devstack import LocalRedis

            self.local = LocalRedis().start()
            url = self.local.url
        self.url = url

    def env(self, tag: str) -> dict[str, str]:
        return {
            "HYGIENE_ALERT_POLICY": "true",
            "HYGIENE_REDIS_URL": self.url,
            "HYGIENE_ALERT_POLICY_PREFIX": f"{tag}:",
        }

    def close(self) -> None:
        if self.local is not None:
            self.local.stop()


def _engine_summary(
    runs: list[dict[str, object]], raws: list[dict[str, float | int]]
) -> dict[str, float]:
    """Median events/s, its share of the plain loop's, and the worker's CPU
    per input message (CPU share over events/s) of one engine's runs."""
    events = statistics.median(float(w["events_per_s"]) for w in runs)  # type: ignore[arg-type]
    cpu = statistics.median(float(w["cpu_share"]) for w in runs)  # type: ignore[arg-type]
    out = {"median_events_per_s": events, "median_cpu_share": cpu,
           "cpu_us_per_message": round(cpu * 1e6 / events, 1)}
    if raws:
        out["share_of_raw"] = round(events / statistics.median(r["events_per_s"] for r in raws), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_traffic_arguments(parser, opportunities=9000)
    parser.add_argument("--messages", type=int, default=0, help="cap (0: all generated)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--skip-worker", action="store_true")
    parser.add_argument(
        "--policy",
        choices=("off", "on", "both"),
        default="off",
        help="worker runs with the Redis alert policy in the path (both: each round "
        "runs the worker without it, then with it)",
    )
    parser.add_argument(
        "--engine",
        default="native",
        help="how the worker runs, or several comma-separated, each in every round: "
        "native (the native core, native calls in threads beside the event loop), "
        "native-inline (HYGIENE_NATIVE_THREADS=false: native calls on the loop), python "
        "(HYGIENE_NATIVE_CORE=false); both: native,python",
    )
    parser.add_argument("--worker-timeout", type=float, default=420.0)
    parser.add_argument("--store", default="memory://",
                        help="the worker's table store: memory:// or rocksdb://")
    parser.add_argument(
        "--changes-max-message-bytes",
        type=int,
        default=16 * 1_048_576,
        help="max.message.bytes set on the worker's changes topic after "
        "`hygiene topics create` (0: leave the broker default, 1 MB)",
    )
    parser.add_argument(
        "--instrument",
        action="store_true",
        help="extra worker run under bench/instrumented_worker.py (stage timers); "
        "with the policy in it when --policy is on or both",
    )
    parser.add_argument(
        "--profile-seconds",
        type=int,
        default=0,
        help="extra worker run under py-spy for this many seconds (with the policy "
        "when --policy is on or both)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="directory for the JSON result, worker logs and profile",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = Path(tempfile.mkdtemp(prefix="hygiene-e2e-logs-"))

    events, keys, n_changes = generate(args)
    broker = Broker()
    summary: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "broker": broker.origin,
        "messages": len(events),
        "changes": n_changes,
        "keys": len(set(keys)),
        "mean_bytes": round(sum(map(len, events)) / len(events)),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    raws: list[dict[str, float | int]] = []
    engines = ["native", "python"] if args.engine == "both" else args.engine.split(",")
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"--engine: unknown {sorted(unknown)}; known: {sorted(ENGINES)}")
    by_engine: dict[str, list[dict[str, object]]] = {engine: [] for engine in engines}
    workers = by_engine[engines[0]]
    """The first engine's runs (the summary's worker_* keys)."""
    policy_workers: list[dict[str, object]] = []
    policy_redis = PolicyRedis() if args.policy != "off" else None
    try:
        topic = f"bench-{stamp}.crm-events"
        create_topics(broker.bootstrap, {topic: 4})
        produce(broker.bootstrap, topic, events, keys)
        for i in range(args.runs):
            if not args.skip_raw:
                raws.append(
                    raw_run(
                        broker.bootstrap, topic, len(events), f"bench-{stamp}-raw{i}", broker.pid
                    )
                )
            for engine in engines if not args.skip_worker and args.policy != "on" else ():
                run = worker_run(
                    broker.bootstrap,
                    topic,
                    len(events),
                    n_changes,
                    f"bench-{stamp}-w{i}" + ("" if engine == engines[0] else f"-{engine}"),
                    broker.pid,
                    logs,
                    args.worker_timeout,
                    args.changes_max_message_bytes,
                    extra_env=ENGINES[engine],
                    store=args.store,
                )
                run["engine"] = engine
                by_engine[engine].append(run)
            if not args.skip_worker and policy_redis is not None:
                tag = f"bench-{stamp}-p{i}"
                policy_workers.append(
                    worker_run(
                        broker.bootstrap,
                        topic,
                        len(events),
                        n_changes,
                        tag,
                        broker.pid,
                        logs,
                        args.worker_timeout,
                        args.changes_max_message_bytes,
                        extra_env=policy_redis.env(tag),
                        store=args.store,
                    )
                )
        if args.instrument:
            summary["instrumented_run"] = worker_run(
                broker.bootstrap,
                topic,
                len(events),
                n_changes,
                f"bench-{stamp}-instr",
                broker.pid,
                logs,
                args.worker_timeout,
                args.changes_max_message_bytes,
                instrument=args.out / f"worker-instrument-{stamp}.json",
                extra_env=policy_redis.env(f"bench-{stamp}-instr") if policy_redis else None,
            )
        if args.profile_seconds:
            raw_profile = args.out / f"worker-profile-{stamp}.txt"
            summary["profiled_run"] = worker_run(
                broker.bootstrap,
                topic,
                len(events),
                n_changes,
                f"bench-{stamp}-prof",
                broker.pid,
                logs,
                args.worker_timeout,
                args.changes_max_message_bytes,
                profile=(args.profile_seconds, raw_profile),
                extra_env=policy_redis.env(f"bench-{stamp}-prof") if policy_redis else None,
            )
            summary["profile"] = str(raw_profile)
    finally:
        broker.close()
        if policy_redis is not None:
            policy_redis.close()

    summary["raw_runs"] = raws
    summary["worker_runs"] = workers
    summary["worker_policy_runs"] = policy_workers
    if policy_workers:
        summary["worker_policy_median_events_per_s"] = statistics.median(
            float(w["events_per_s"]) for w in policy_workers  # type: ignore[arg-type]
        )
        summary["worker_policy_median_cpu_share"] = statistics.median(
            float(w["cpu_share"]) for w in policy_workers  # type: ignore[arg-type]
        )

    if raws:
        summary["raw_median_events_per_s"] = statistics.median(r["events_per_s"] for r in raws)
        summary["raw_median_cpu_share"] = statistics.median(r["cpu_share"] for r in raws)
    if workers:
        summary["worker_median_events_per_s"] = statistics.median(
            float(w["events_per_s"]) for w in workers
        )  # type: ignore[arg-type]
        summary["worker_median_changes_per_s"] = statistics.median(
            float(w["changes_per_s"]) for w in workers
        )  # type: ignore[arg-type]
        summary["worker_median_cpu_share"] = statistics.median(
            float(w["cpu_share"]) for w in workers
        )  # type: ignore[arg-type]
    if raws and workers:
        summary["worker_share_of_raw"] = round(
            float(summary["worker_median_events_per_s"])  # type: ignore[arg-type]
            / float(summary["raw_median_events_per_s"]),
            4,
        )  # type: ignore[arg-type]
    if raws and policy_workers:
        summary["worker_policy_share_of_raw"] = round(
            float(summary["worker_policy_median_events_per_s"])  # type: ignore[arg-type]
            / float(summary["raw_median_events_per_s"]),  # type: ignore[arg-type]
            4,
        )
    summary["engines"] = {
        engine: _engine_summary(runs, raws) for engine, runs in by_engine.items() if runs
    }
    path = args.out / f"e2e-{stamp}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(
        json.dumps(
            {
                k: v
                for k, v in summary.items()
                if k
                not in (
                    "raw_runs",
                    "worker_runs",
                    "worker_policy_runs",
                    "profiled_run",
                    "instrumented_run",
                )
            },
            indent=2,
        )
    )
    print(f"full result: {path}; worker logs: {logs}")


if __name__ == "__main__":
    main()
