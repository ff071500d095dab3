"""Sweep cost for one worker holding N opportunities (target: <= 5 s for 1,000,000).

1. Simulates ``--source`` opportunities (mixed formats, 90 days), replays them
   through ``processor.replay.runner.Replay`` and sweeps them at the end of
   the window (``finish(as_of)``), so the states are what a table holds after
   a quarter of traffic and regular sweeps;
2. stores them as the table does (``dump_state`` bytes in a dict keyed by the
   opportunity id's bytes) and clones them with new ids up to each size in
   ``--sizes`` (only the ``opportunity_id`` field differs);
3. times the state processor's ``handle_sweep`` (``--engine``: the native
   one the worker runs by default, or the Python one) over every partition (one worker
   owning all ``--partitions``) with a no-op publish: the first sweep after
   assignment (builds the partition index from the table's keys), then a
   second, warm one, each ``--interval`` seconds of event time after the last;
   optionally ``--later-days``: a sweep days after the window ends, where
   time-driven rules fire for many deals (more dumps and outputs).

Memory is the process RSS after the table is built.

    python bench/sweep_bench.py --source 10000 --sizes 100000,250000,1000000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.replay.runner import Replay
from processor.rules import default_rules
from processor.simulate import simulate
from processor.stream.messages import SweepTick
from processor.stream.native_state import NativeStateProcessor
from processor.stream.state import StateProcessor, Topics, dump_state, load_state

HERE = Path(__file__).resolve().parent
PREFIX = b'{"opportunity_id":'


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def base_states(
    source: int, seed: int, cache: Path | None = None
) -> tuple[list[tuple[str, bytes]], int, dict[str, float]]:
    """States after replaying a simulation; cached in ``cache`` (a JSON file
    outside the repository) so the sweep and recovery benchmarks share one."""
    if cache is not None and cache.is_file():
        doc = orjson.loads(cache.read_bytes())
        return (
            with_next_due([(i, r.encode()) for i, r in doc["states"]], doc["as_of"]),
            doc["as_of"],
            doc["stats"] | {"cached": str(cache)},
        )
    rules = default_rules()
    started = time.perf_counter()
    sim = simulate(
        opportunities=source,
        days=90,
        seed=seed,
        fmt="mixed",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        rules=rules,
    )
    generated = time.perf_counter()
    replay = Replay(rules, keep=False, received_at=sim.as_of)
    for raw in sim.events:
        replay.feed(raw, "bench")
    as_of = to_ms(sim.as_of)
    replay.finish(as_of)
    replayed = time.perf_counter()
    states = []
    for opportunity_id, state in replay.states.items():
        raw = dump_state(state)
        assert raw.startswith(PREFIX), raw[:40]
        states.append((opportunity_id, raw))
    sizes = sorted(len(raw) for _, raw in states)
    stats = {
        "generate_s": round(generated - started, 1),
        "replay_s": round(replayed - generated, 1),
        "messages": len(sim.events),
        "state_bytes_mean": round(sum(sizes) / len(sizes)),
        "state_bytes_p95": sizes[int(len(sizes) * 0.95)],
    }
    del sim, replay
    gc.collect()
    if cache is not None:
        cache.write_bytes(
            orjson.dumps(
                {"as_of": as_of, "stats": stats, "states": [(i, r.decode()) for i, r in states]}
            )
        )
    return with_next_due(states, as_of), as_of, stats


def with_next_due(states: list[tuple[str, bytes]], as_of: int) -> list[tuple[str, bytes]]:
    """Stamps each state's ``next_due_ms`` as the stream's ``_finish`` does when
    it stores a state (the replay runner does not), so due-driven sweeps see
    what a live table holds. No-op for engines without ``next_due``."""
    engine = Engine(default_rules())
    if not hasattr(engine, "next_due"):
        return states
    stamped = []
    for opportunity_id, raw in states:
        state = load_state(raw)
        assert state is not None
        state.next_due_ms = engine.next_due(state, as_of)
        stamped.append((opportunity_id, dump_state(state)))
    return stamped


def cache_path(args: argparse.Namespace) -> Path | None:
    if args.cache is None:
        return Path(f"/tmp/hygiene-bench-base-{args.source}-{args.seed}.json")
    return None if str(args.cache) == "none" else args.cache


def fill(table: dict[bytes, bytes], states: list[tuple[str, bytes]], size: int) -> None:
    """Clones beyond the source get ids '<source id>~<copy>' (routing spreads them)."""
    n = len(states)
    for i in range(len(table), size):
        source_id, raw = states[i % n]
        if i < n:
            table[source_id.encode()] = raw
            continue
        new_id = f"{source_id}~{i // n}"
        # dump_state writes opportunity_id first: swap the value, keep the rest.
        rest = raw[len(PREFIX) + len(orjson.dumps(source_id)) :]
        table[new_id.encode()] = PREFIX + orjson.dumps(new_id) + rest


async def sweep_all(
    processor: StateProcessor | NativeStateProcessor, table: dict[bytes, bytes], partitions: int, at_ms: int
) -> dict[str, float | int]:
    published = 0

    async def publish(records: list[tuple[str, bytes | None, bytes]]) -> None:
        nonlocal published
        published += len(records)

    before = dict.__len__(table)
    per_partition = []
    started = time.perf_counter()
    for partition in range(partitions):
        t = time.perf_counter()
        await processor.handle_sweep(SweepTick(at_ms=at_ms), partition, table, publish)
        per_partition.append(round(time.perf_counter() - t, 2))
    took = time.perf_counter() - started
    assert len(table) == before
    return {
        "seconds": round(took, 2),
        "per_partition_s": per_partition,
        "us_per_opportunity": round(took / len(table) * 1e6, 1),
        "outputs": published,
    }


class CountingTable(dict):  # type: ignore[type-arg]
    """The table as a dict, counting writes (what would become changelog records)."""

    writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        CountingTable.writes += 1
        super().__setitem__(key, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="base states cache (default /tmp/hygiene-bench-base-SOURCE-SEED.json;"
        " 'none' to disable)",
    )
    parser.add_argument("--sizes", default="100000,250000,1000000")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--interval", type=int, default=300, help="seconds between sweeps")
    parser.add_argument(
        "--later-days",
        type=float,
        default=0,
        help="also sweep this many days after the window ends (0: no); the "
        "simulation keeps every quantity >= 1.5 days from its threshold, so "
        "use a week to make rules fire",
    )
    parser.add_argument(
        "--profile", type=int, default=0, help="cProfile a warm sweep at this size (0: no)"
    )
    parser.add_argument(
        "--store-partitions", action="store_true",
        help="give the table a Faust memory store that knows each key's partition, as "
        "after a changelog recovery (the worker's case); without it every key is hashed",
    )
    parser.add_argument("--engine", choices=["native", "python"], default="native",
                        help="the state agent's engine (HYGIENE_NATIVE_CORE)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    states, as_of, stats = base_states(args.source, args.seed, cache_path(args))
    print(
        f"base: {len(states):,} states from {stats['messages']:,} messages "
        f"(simulate {stats['generate_s']}s, replay {stats['replay_s']}s); state bytes mean "
        f"{stats['state_bytes_mean']:,}, p95 {stats['state_bytes_p95']:,} "
        f"{stats.get('cached', '')}",
        flush=True,
    )
    # sanity: a clone loads and carries its new id
    probe: dict[bytes, bytes] = {}
    fill(probe, states, len(states) + 1)
    clone_key = list(probe)[-1]
    assert load_state(probe[clone_key]).opportunity_id == clone_key.decode()  # type: ignore[union-attr]

    rules = default_rules()
    table = CountingTable()
    results = []
    rss0 = rss_mib()
    for size in (int(s) for s in args.sizes.split(",")):
        t = time.perf_counter()
        fill(table, states, size)
        if args.store_partitions:
            from faust.stores.memory import Store as MemoryStore

            from processor.stream.routing import Partitioner

            route = Partitioner(args.partitions)
            store = MemoryStore.__new__(MemoryStore)
            store.data = table
            store._key_partition = {key: route(key.decode()) for key in table}
            table.data = store  # type: ignore[attr-defined]
        gc.collect()
        built = time.perf_counter() - t
        topics = Topics("a", "h", "c", "d")
        processor: StateProcessor | NativeStateProcessor = (
            NativeStateProcessor(rules, topics, args.partitions) if args.engine == "native"
            else StateProcessor(Engine(rules), topics, args.partitions))
        row: dict[str, object] = {
            "opportunities": size,
            "table_value_mib": round(sum(map(len, table.values())) / 2**20, 1),
            "rss_mib": round(rss_mib()),
            "rss_growth_mib": round(rss_mib() - rss0),
            "fill_s": round(built, 1),
        }
        at = as_of + args.interval * 1000
        CountingTable.writes = 0
        row["first_sweep"] = asyncio.run(sweep_all(processor, table, args.partitions, at))
        row["first_sweep"]["table_writes"] = CountingTable.writes  # type: ignore[index]
        at += args.interval * 1000
        CountingTable.writes = 0
        if args.profile == size:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            row["warm_sweep"] = asyncio.run(sweep_all(processor, table, args.partitions, at))
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        else:
            row["warm_sweep"] = asyncio.run(sweep_all(processor, table, args.partitions, at))
        row["warm_sweep"]["table_writes"] = CountingTable.writes  # type: ignore[index]
        if args.later_days:
            CountingTable.writes = 0
            name = f"sweep_{args.later_days:g}_days_later"
            row[name] = asyncio.run(
                sweep_all(
                    processor, table, args.partitions, as_of + int(args.later_days * 86_400_000)
                )
            )
            row[name]["table_writes"] = CountingTable.writes  # type: ignore[index]
        row["rss_after_mib"] = round(rss_mib())
        print(json.dumps(row), flush=True)
        results.append(row)

    if len(results) >= 2:
        last = results[-1]
        per = last["warm_sweep"]["us_per_opportunity"]  # type: ignore[index]
        print(
            f"warm sweep at {last['opportunities']:,}: {per} µs/opportunity -> "
            f"{per * 1_000_000 / 1e6:.1f} s per 1,000,000 (target 5 s)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "base": stats,
                "source": len(states),
                "pid": os.getpid(),
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "results": results,
            },
            indent=2,
        )
    )
    print(f"result: {path}")


if __name__ == "__main__":
    main()
